"""What the loaders and generators share: tables as pandas frames."""

from sklearn.utils._optional_dependencies import check_pandas_support


def _as_frame(caller, array, columns):
    """``array`` as a pandas DataFrame with ``columns``, or a clear ImportError.

    Parameters
    ----------
    caller : str
        The function asked for a frame, named in the error when pandas is
        missing.
    array : ndarray of shape (n_rows, n_columns)
    columns : list of str

    Returns
    -------
    pandas.DataFrame
        A copy of ``array``, one column per name, a default ``RangeIndex``.
    """
    pandas = check_pandas_support(f"{caller} with as_frame=True")
    return pandas.DataFrame(array, columns=columns, copy=True)
