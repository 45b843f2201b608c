"""matplotlib, when it is installed (the ``plot`` extra)."""

PLOT_HINT = "install matplotlib for figures: pip install 'skpapers[plot]'"


def optional_pyplot():
    """``matplotlib.pyplot`` on the file-only Agg backend, or None if missing."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
