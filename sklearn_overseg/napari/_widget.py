"""napari dock widget: correct a Labels layer and review the merges one by one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..pretrained import PRETRAINED_KINDS, load_pretrained
from ._review import apply_decisions, review_order

__all__ = ["CorrectorWidget"]

#: Table columns: (header, how a decision row is shown).
_COLUMNS = (
    ("accept", None),
    ("candidate", lambda cid, row: str(cid)),
    ("cell_a", lambda cid, row: str(int(row.cell_a))),
    ("cell_b", lambda cid, row: str(int(row.cell_b))),
    ("kind", lambda cid, row: str(row.kind)),
    ("p", lambda cid, row: f"{_decisive_p(row):.3f}"),
    ("reason", lambda cid, row: str(row.reason)),
    ("filled", lambda cid, row: str(int(row.filled_voxels))),
)


def _decisive_p(row) -> float:
    again = getattr(row, "probability_rejudged", np.nan)
    return float(row.probability if pd.isna(again) else again)


class CorrectorWidget(QWidget):
    """Run a corrector on a Labels layer, then accept or reject each merge it made.

    The corrected volume is added as a new Labels layer (``"<name> corrected"``). The
    table lists every candidate, most uncertain first (``|p - 0.5|`` ascending); merged
    candidates carry a check box, all checked. Unchecking one undoes that merge in the
    output layer (see :func:`~sklearn_overseg.napari.apply_decisions`); clicking a row
    moves the viewer to the pair's gap.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer (napari passes it by this parameter name).
    corrector : SegmentationCorrector, optional
        A fitted corrector to use instead of the shipped models; the model choice is then
        hidden.
    """

    def __init__(self, napari_viewer, corrector=None) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.corrector = corrector
        self._correctors: dict[str, Any] = {}
        self.original: np.ndarray | None = None
        self.corrected: np.ndarray | None = None
        self.decisions: pd.DataFrame | None = None
        self.output_layer = None
        self._rows: list = []  # candidate id of each table row

        self.layer_combo = QComboBox()
        self.model_combo = QComboBox()
        self.model_combo.addItems(list(PRETRAINED_KINDS))
        self.run_button = QPushButton("Correct")
        self.accept_all_button = QPushButton("Accept all")
        self.reject_all_button = QPushButton("Reject all")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.table = QTableWidget(0, len(_COLUMNS))
        self.table.setHorizontalHeaderLabels([name for name, _ in _COLUMNS])
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectRows)

        form = QFormLayout()
        form.addRow("labels", self.layer_combo)
        if corrector is None:
            form.addRow("model", self.model_combo)
        buttons = QHBoxLayout()
        buttons.addWidget(self.accept_all_button)
        buttons.addWidget(self.reject_all_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.run_button)
        layout.addWidget(self.status)
        layout.addWidget(self.table)
        layout.addLayout(buttons)

        self.run_button.clicked.connect(self._on_run)
        self.accept_all_button.clicked.connect(lambda: self._set_all(True))
        self.reject_all_button.clicked.connect(lambda: self._set_all(False))
        self.table.itemChanged.connect(self._on_item_changed)
        self.table.cellClicked.connect(self._on_cell_clicked)
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(self._refresh_layers)
        self._refresh_layers()

    # ------------------------------------------------------------------ layers
    def _labels_layers(self) -> list:
        from napari.layers import Labels

        return [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, Labels) and layer is not self.output_layer
        ]

    def _refresh_layers(self, event=None) -> None:
        current = self.layer_combo.currentText()
        names = [layer.name for layer in self._labels_layers()]
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        self.layer_combo.addItems(names)
        if current in names:
            self.layer_combo.setCurrentText(current)
        self.layer_combo.blockSignals(False)

    def _selected_layer(self):
        name = self.layer_combo.currentText()
        for layer in self._labels_layers():
            if layer.name == name:
                return layer
        raise ValueError("choose a Labels layer to correct (none is selected).")

    def _get_corrector(self):
        if self.corrector is not None:
            return self.corrector
        kind = self.model_combo.currentText()
        if kind not in self._correctors:
            self._correctors[kind] = load_pretrained(kind=kind)
        return self._correctors[kind]

    # --------------------------------------------------------------------- run
    def run(self, layer=None):
        """Correct ``layer`` (default: the chosen one) and show the result.

        Parameters
        ----------
        layer : napari.layers.Labels, optional

        Returns
        -------
        output_layer : napari.layers.Labels
            The layer holding the corrected volume.
        """
        layer = self._selected_layer() if layer is None else layer
        # Copy: the reviewer may edit the input layer while reviewing.
        original = np.array(layer.data, copy=True)
        corrected, decisions = self._get_corrector().correct(original)
        self.original, self.corrected, self.decisions = original, corrected, decisions
        name = f"{layer.name} corrected"
        if self.output_layer is not None and self.output_layer in self.viewer.layers:
            self.output_layer.data = corrected.copy()
            self.output_layer.name = name
        else:
            self.output_layer = self.viewer.add_labels(
                corrected.copy(), name=name, scale=layer.scale, translate=layer.translate
            )
        self.output_layer.metadata["decisions"] = decisions
        self._fill_table()
        merged = int(decisions["merged"].sum())
        self.status.setText(f"{len(decisions)} candidates, {merged} merged.")
        return self.output_layer

    def _on_run(self) -> None:
        from napari.utils.notifications import show_error

        try:
            self.run()
        except (ValueError, TypeError, FileNotFoundError) as exc:
            self.status.setText(str(exc))
            show_error(str(exc))

    # ------------------------------------------------------------------ review
    def _fill_table(self) -> None:
        decisions = self.decisions
        self._rows = list(review_order(decisions))
        self.table.blockSignals(True)
        self.table.setRowCount(len(self._rows))
        for r, cid in enumerate(self._rows):
            row = decisions.loc[cid]
            for c, (_, show) in enumerate(_COLUMNS):
                if show is None:
                    item = QTableWidgetItem("")
                    if bool(row.merged):
                        item.setFlags(Qt.ItemIsEnabled | Qt.ItemIsUserCheckable)
                        item.setCheckState(Qt.Checked)
                    else:
                        item.setFlags(Qt.ItemIsEnabled)
                else:
                    item = QTableWidgetItem(show(cid, row))
                    item.setFlags(Qt.ItemIsEnabled | Qt.ItemIsSelectable)
                self.table.setItem(r, c, item)
        self.table.blockSignals(False)
        self.table.resizeColumnsToContents()

    @property
    def accepted_ids(self) -> list:
        """Candidate ids of the merges currently accepted."""
        return [
            cid
            for r, cid in enumerate(self._rows)
            if self.table.item(r, 0).flags() & Qt.ItemIsUserCheckable
            and self.table.item(r, 0).checkState() == Qt.Checked
        ]

    def set_accepted(self, candidate, accepted: bool) -> None:
        """Accept or reject one merge (as ticking its box does) and update the output.

        Parameters
        ----------
        candidate : str
            A candidate id of the decision table with ``merged=True``.
        accepted : bool
        """
        if candidate not in self._rows:
            raise ValueError(f"no candidate {candidate!r} in the decision table.")
        item = self.table.item(self._rows.index(candidate), 0)
        if not item.flags() & Qt.ItemIsUserCheckable:
            raise ValueError(
                f"candidate {candidate!r} was not merged: nothing to accept or reject."
            )
        item.setCheckState(Qt.Checked if accepted else Qt.Unchecked)  # emits itemChanged

    def _set_all(self, accepted: bool) -> None:
        self.table.blockSignals(True)
        for r in range(len(self._rows)):
            item = self.table.item(r, 0)
            if item.flags() & Qt.ItemIsUserCheckable:
                item.setCheckState(Qt.Checked if accepted else Qt.Unchecked)
        self.table.blockSignals(False)
        self._update_output()

    def _on_item_changed(self, item) -> None:
        if item.column() == 0:
            self._update_output()

    def _update_output(self) -> None:
        if self.decisions is None or self.output_layer is None:
            return
        self.output_layer.data = apply_decisions(
            self.original, self.corrected, self.decisions, self.accepted_ids
        )
        self.status.setText(
            f"{len(self.accepted_ids)} of {int(self.decisions['merged'].sum())} merges accepted."
        )

    def _on_cell_clicked(self, r: int, c: int) -> None:
        row = self.decisions.loc[self._rows[r]]
        layer = self.output_layer
        z = (int(row.z_a_last) + int(row.z_b_first)) / 2
        axis = self.viewer.dims.ndim - layer.ndim  # the layer's z in the viewer's dims
        self.viewer.dims.set_point(axis, float(layer.translate[0] + layer.scale[0] * z))
        layer.selected_label = int(row.merged_into) if bool(row.merged) else int(row.cell_a)
