"""loopline: keep a fine-tuned text classifier fresh, safely."""

__version__ = "0.1.0"
