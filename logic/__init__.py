"""Pure logic: no Faust import, no I/O. Unit-tested in microseconds."""
