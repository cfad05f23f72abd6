"""ansz: lossless compression of neural-network model files with rANS over coding pairs."""

__version__ = "0.1.0"
