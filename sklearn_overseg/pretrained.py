"""The pretrained correctors shipped inside the package.

They are stored as JSON + NumPy arrays (see :mod:`sklearn_overseg.io.persistence`) and rebuilt
on load: nothing in the files is executed or unpickled. ``docs/model_card.md`` says what
they were trained on and how well they do.

- ``models/default``: splits of per-slice segmentations stitched in z (Cellpose,
  StarDist, CellStitch): axial gaps of up to three layers, one-layer fragments and
  pieces that share a layer, and the paper's blanked layer;
- ``models/contact``: cuts by tilted surfaces (3D segmenters such as PlantSeg);
- ``kind="both"`` joins the two: one :class:`~sklearn_overseg.screening.contact.CombinedScreener`
  and a :class:`~sklearn_overseg.classification.dispatch.KindClassifier` that sends each candidate
  to the model of its kind.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

__all__ = ["PRETRAINED_DIR", "PRETRAINED_KINDS", "load_pretrained"]

#: Where the default (axial) model lives inside the installed package.
PRETRAINED_DIR = Path(str(resources.files("sklearn_overseg") / "models" / "default"))
#: Where the contact-mode model lives.
CONTACT_DIR = PRETRAINED_DIR.parent / "contact"
#: The values ``load_pretrained(kind=...)`` accepts.
PRETRAINED_KINDS = ("axial", "contact", "both")


def _load(path: Path):
    from .io.persistence import load_estimator

    if not path.exists():
        raise FileNotFoundError(f"no model directory at {path}")
    return load_estimator(path)


def load_pretrained(path=None, *, kind: str = "axial"):
    """Load a fitted :class:`~sklearn_overseg.correction.corrector.SegmentationCorrector`.

    Parameters
    ----------
    path : str or Path, optional
        A model directory written by :func:`~sklearn_overseg.io.persistence.save_estimator`
        (``overseg train -o DIR``). Defaults to the shipped model of ``kind``.
    kind : {"axial", "contact", "both"}, default="axial"
        Which shipped model, when ``path`` is not given.

    Returns
    -------
    corrector : SegmentationCorrector
        Ready for ``correct`` / ``transform``.

    Raises
    ------
    FileNotFoundError
        If the directory does not exist.
    ValueError
        If ``kind`` is unknown, or given together with ``path`` other than "axial".
    """
    if kind not in PRETRAINED_KINDS:
        raise ValueError(f"kind must be one of {PRETRAINED_KINDS}, got {kind!r}.")
    if path is not None:
        if kind != "axial":
            raise ValueError("give either a model path or a shipped kind, not both.")
        return _load(Path(path))
    if kind == "axial":
        return _load(PRETRAINED_DIR)
    if kind == "contact":
        return _load(CONTACT_DIR)
    return _join(_load(PRETRAINED_DIR), _load(CONTACT_DIR))


def _join(axial, contact):
    """One corrector that screens every way and judges each pair with the model of its kind.

    ``axial`` is the default model (axial gaps, and pieces sharing a layer when it
    screens them), ``contact`` the contact model.
    """
    from .classification.dispatch import KindClassifier
    from .correction.corrector import SegmentationCorrector
    from .screening.contact import CombinedScreener

    def parts(model):
        """Screener, classifier and threshold of each kind a shipped model judges."""
        screener, classifier = model.screener_, model.classifier_
        if isinstance(screener, CombinedScreener):
            screeners = {s.kind: s for s in screener._screeners()}
        else:
            screeners = {screener.kind: screener}
        for kind in screeners:
            if isinstance(classifier, KindClassifier):
                estimator = classifier.estimators_[kind]
            else:
                estimator = classifier
            threshold = model.threshold
            if isinstance(threshold, dict):
                threshold = threshold[kind]
            yield kind, screeners[kind], estimator, threshold

    screeners, estimators, thresholds = {}, {}, {}
    for model in (axial, contact):
        for kind, screener, estimator, threshold in parts(model):
            screeners[kind], estimators[kind], thresholds[kind] = screener, estimator, threshold
    classifier = KindClassifier(**estimators)
    classifier.estimators_ = estimators
    classifier.classes_ = np.array([0, 1])
    screener = CombinedScreener(
        axial=screeners.get("axial", "drop"),
        contact=screeners.get("contact", "drop"),
        lateral=screeners.get("lateral", "drop"),
    )
    both = SegmentationCorrector(
        screener=screener,
        classifier=classifier,
        # Each kind keeps the threshold its model was tuned with.
        threshold=thresholds,
        interpolation=axial.interpolation,
    )
    both.screener_ = screener
    both.classifier_ = classifier
    both.spacing_ = axial.spacing_
    both.n_training_pairs_ = axial.n_training_pairs_ + contact.n_training_pairs_
    both.training_balance_ = {
        k: axial.training_balance_.get(k, 0) + contact.training_balance_.get(k, 0)
        for k in set(axial.training_balance_) | set(contact.training_balance_)
    }
    return both
