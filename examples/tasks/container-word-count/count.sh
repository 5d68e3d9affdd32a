#!/bin/sh
# Writes the line, word and byte counts of $1 to the outputs, reporting progress on the way.
set -eu
echo "progress: 0.1"
wc -l -w -c < "$1" > "$AICPW_OUTPUT_DIR/counts.txt"
echo "progress: 1.0"
cat "$AICPW_OUTPUT_DIR/counts.txt"
