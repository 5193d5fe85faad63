#!/bin/sh
# placeholder replaced below
echo "0 passed, 0 failed"
