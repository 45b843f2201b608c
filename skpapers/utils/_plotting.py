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


def save_figure(fig, path):
    """Lay out ``fig``, write it to ``path`` as a report's PNG and close it.

    Returns ``path``, to list among a :class:`Result`'s figures.
    """
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
