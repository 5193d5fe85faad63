build-fuzz/plots/html.o: plots/html.c plots/html.h core/error.h

plots/html.h:

core/error.h:
