"""The SO2 camera processing chain (floor 2): no Tk, no sockets, no drivers."""
