/* seqlens ablate's report sections (cli/cmd_ablate_report.c), which its
 * entry in the registry (cli/cmd_ablate.c) lists: ablate-family.json,
 * ablate-skip.json, ablate-layer.json and ablate-component.json. */
#ifndef SL_CMD_ABLATE_REPORT_H
#define SL_CMD_ABLATE_REPORT_H

#include "plots/section.h"

#define SL_ABLATE_SECTIONS 4
extern const sl_section sl_ablate_sections[SL_ABLATE_SECTIONS];

#endif
