"""Code that runs a network or holds weights. The host (comfy) is imported lazily, inside
functions, so importing this package stays cheap."""
