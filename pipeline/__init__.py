"""veille: press monitoring for the Atlanpole Biotherapies cluster."""

__version__ = "0.1.0"

__all__ = ["__version__"]
