"""An offline demo: example cluster sites on a loopback server, and the daemon reading them."""
