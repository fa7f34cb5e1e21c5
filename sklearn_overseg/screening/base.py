"""What every screener shares: the estimator base class and the candidate table builder.

:class:`BaseScreener` holds the parameter checks, the index/spacing preparation and the
many-volume ``transform`` of the axial, lateral and contact screeners;
:func:`build_table` turns the position pairs a screener found into the candidate table
(:mod:`sklearn_overseg.screening.candidates`), cutting each pair's geometry with the
function the screener gives.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context

from .._validation import check_label_volume, check_n_jobs, check_spacing, effective_n_jobs
from .candidates import CANDIDATE_COLUMNS, candidate_ids, concat_tables, empty_candidate_table
from .cells import CellIndex

__all__ = ["BaseScreener", "build_table"]


class BaseScreener(TransformerMixin, BaseEstimator):
    """What every screener shares: parameter checks, the door to a volume, many volumes.

    Subclasses implement :meth:`screen` and call :meth:`_prepare` first. A screener's
    samples are 3D label volumes and its output is a candidate table, which its tags
    say (``three_d_array``, not ``two_d_array``); it learns nothing, so it needs no fit.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.requires_fit = False
        tags.target_tags.required = False
        tags.transformer_tags.preserves_dtype = []  # the output is a candidate table
        return tags

    def _check_params(self) -> None:
        self._validate_params()

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X=None, y=None):
        """Check the parameters; screening learns nothing.

        Parameters
        ----------
        X : ignored
        y : ignored

        Returns
        -------
        self
        """
        self._check_params()
        return self

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Columns of the candidate table :meth:`transform` returns.

        Parameters
        ----------
        input_features : ignored
            Volumes have no feature names.

        Returns
        -------
        names : ndarray of str
        """
        return np.asarray(CANDIDATE_COLUMNS, dtype=object)

    def _prepare(self, volume, spacing, index: CellIndex | None):
        """Validated parameters, the volume's index and the voxel spacing to use."""
        self._check_params()
        check_n_jobs(self.n_jobs)
        if index is None:
            index = CellIndex.from_volume(check_label_volume(volume, allow_empty=True))
        elif index.volume is not volume:
            volume = check_label_volume(volume, allow_empty=True)
            if index.volume.shape != volume.shape:
                raise ValueError(
                    f"index was built for a volume of shape {index.volume.shape}, "
                    f"not {volume.shape}."
                )
        default = getattr(self, "spacing", None)
        return index, check_spacing(spacing if spacing is not None else default)

    def transform(self, X) -> pd.DataFrame:
        """Screen a list of volumes; volume ids are their positions ``"0"``, ``"1"``, ...

        Parameters
        ----------
        X : list of array-like or dict of str to array-like
            Label volumes. A dict gives the ids.

        Returns
        -------
        table : DataFrame
        """
        items = X.items() if isinstance(X, dict) else enumerate(_as_volume_list(X))
        return concat_tables([self.screen(v, volume_id=str(k)) for k, v in items])


def _as_volume_list(X) -> list:
    if isinstance(X, np.ndarray) and X.ndim == 3:
        return [X]
    if isinstance(X, (list, tuple)):
        return list(X)
    raise TypeError(
        f"X must be a list of 3D label volumes (or a dict of id to volume), got {type(X).__name__}."
    )


def build_table(
    index: CellIndex,
    pairs: pd.DataFrame,
    *,
    volume_id: str,
    kind: str,
    spacing: tuple[float, float, float],
    n_jobs: int | None = None,
    geometry=None,
    with_geometry: bool = True,
) -> pd.DataFrame:
    """Turn screened position pairs into a candidate table with geometry.

    Parameters
    ----------
    index : CellIndex
    pairs : DataFrame
        Columns ``pos_a``, ``pos_b``, ``gap``, ``overlap_px`` and optionally
        ``contact_px``.
    volume_id, kind : str
    spacing : tuple of float
    n_jobs : int, optional
    geometry : callable, optional
        ``geometry(index, label_a, label_b, gap, spacing) -> PairGeometry``; required
        with ``with_geometry=True`` (the axial screener passes its cut-out).
    with_geometry : bool, default=True
        Cut out every pair's masks. Without, the ``geometry`` column holds ``None`` and
        the caller cuts them later (block by block, see
        :mod:`sklearn_overseg.correction.blockwise`).
    """
    if with_geometry and geometry is None:
        raise ValueError("build_table needs a geometry function unless with_geometry=False.")
    if len(pairs) == 0:
        return empty_candidate_table()
    pos_a = pairs["pos_a"].to_numpy()
    pos_b = pairs["pos_b"].to_numpy()
    cell_a = index.labels[pos_a]
    cell_b = index.labels[pos_b]
    gaps = pairs["gap"].to_numpy()
    if with_geometry:
        # numpy comparisons release the GIL, so threads scale without copying the volume.
        geoms = Parallel(n_jobs=effective_n_jobs(n_jobs, len(pairs)), prefer="threads")(
            delayed(geometry)(index, int(a), int(b), int(g), spacing)
            for a, b, g in zip(cell_a, cell_b, gaps, strict=True)
        )
    else:
        geoms = [None] * len(pairs)
    kinds = [kind] * len(pairs)
    ref_layers, ref_voxels = index.typical_cell()
    table = pd.DataFrame(
        {
            "volume": volume_id,
            "cell_a": cell_a.astype(np.int64),
            "cell_b": cell_b.astype(np.int64),
            "kind": kind,
            "gap": gaps.astype(np.int64),
            "z_a_first": index.z_first[pos_a],
            "z_a_last": index.z_last[pos_a],
            "z_b_first": index.z_first[pos_b],
            "z_b_last": index.z_last[pos_b],
            "overlap_px": pairs["overlap_px"].to_numpy().astype(np.int64),
            "contact_px": (
                pairs["contact_px"].to_numpy().astype(np.int64)
                if "contact_px" in pairs
                else np.zeros(len(pairs), dtype=np.int64)
            ),
            "voxels_a": index.voxel_counts[pos_a],
            "voxels_b": index.voxel_counts[pos_b],
            "ref_layers": ref_layers,
            "ref_voxels": ref_voxels,
            "geometry": pd.Series(geoms, dtype=object).to_numpy(),
        },
        index=pd.Index(candidate_ids(volume_id, cell_a, cell_b, kinds), name="candidate"),
    )
    return table
