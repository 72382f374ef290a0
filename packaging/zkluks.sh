#!/bin/sh
# /usr/bin/zkluks: runs the bundle installed in /usr/lib/zkluks with the system's Node.
exec node /usr/lib/zkluks/zkluks.mjs "$@"
