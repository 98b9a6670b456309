"""The Tk/ttkthemes GUI (floor 4): a thin layer over the client and the processing library."""
