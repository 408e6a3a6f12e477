"""gan-claims: pre-registered reproductions of the classic claims about GAN training."""

__version__ = "0.1.0"
