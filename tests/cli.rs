//! Command-line behaviour that needs no particular schema: bad input gets one clear line, exit 2.
