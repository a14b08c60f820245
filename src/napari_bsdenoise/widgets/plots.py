"""Two small plots drawn with QPainter (no matplotlib): the loss curves and the noise autocorrelation."""

from __future__ import annotations

import math

import numpy as np
from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QFont, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

TRAIN_COLOR = QColor(90, 160, 255)
VAL_COLOR = QColor(255, 150, 60)
TEXT_COLOR = QColor(200, 200, 200)
AXIS_COLOR = QColor(120, 120, 120)


class LossPlot(QWidget):
    """Training loss (every step, smoothed) and validation loss (points) against the step."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumHeight(120)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.train: list[tuple[int, float]] = []
        self.val: list[tuple[int, float]] = []

    def clear(self) -> None:
        self.train, self.val = [], []
        self.update()

    def add(self, step: int, loss: float | None = None, val_loss: float | None = None) -> None:
        if loss is not None and math.isfinite(loss):
            self.train.append((step, float(loss)))
        if val_loss is not None and math.isfinite(val_loss):
            self.val.append((step, float(val_loss)))
        self.update()

    def _smoothed(self) -> list[tuple[int, float]]:
        if len(self.train) < 3:
            return self.train
        y = np.array([v for _, v in self.train])
        k = max(1, len(y) // 30)
        ys = np.convolve(np.pad(y, (k, k), mode="edge"), np.ones(2 * k + 1) / (2 * k + 1), mode="valid")
        return [(s, float(v)) for (s, _), v in zip(self.train, ys)]

    def paintEvent(self, event):  # noqa: N802 (Qt)
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        p.setFont(QFont(p.font().family(), 8))
        w, h = self.width(), self.height()
        left, right, top, bottom = 44, 8, 8, 18
        plot = QRectF(left, top, max(1, w - left - right), max(1, h - top - bottom))
        p.setPen(QPen(AXIS_COLOR))
        p.drawRect(plot)
        train = self._smoothed()
        points = train + self.val
        if not points:
            p.setPen(QPen(TEXT_COLOR))
            p.drawText(plot, Qt.AlignCenter, "loss curves appear here during training")
            return
        steps = [s for s, _ in points]
        vals = [v for _, v in points]
        s0, s1 = min(steps), max(max(steps), min(steps) + 1)
        lo, hi = min(vals), max(vals)
        if hi - lo < 1e-12:
            lo, hi = lo - 0.5 * abs(lo or 1), hi + 0.5 * abs(hi or 1)
        pad = 0.05 * (hi - lo)
        lo, hi = lo - pad, hi + pad

        def xy(s, v):
            return QPointF(plot.left() + (s - s0) / (s1 - s0) * plot.width(),
                           plot.bottom() - (v - lo) / (hi - lo) * plot.height())

        p.setPen(QPen(TEXT_COLOR))
        p.drawText(QRectF(0, top - 4, left - 4, 14), Qt.AlignRight, f"{hi:.3g}")
        p.drawText(QRectF(0, plot.bottom() - 10, left - 4, 14), Qt.AlignRight, f"{lo:.3g}")
        p.drawText(QRectF(plot.left(), plot.bottom() + 2, plot.width(), 14), Qt.AlignLeft, f"step {s0}")
        p.drawText(QRectF(plot.left(), plot.bottom() + 2, plot.width(), 14), Qt.AlignRight, f"{s1}")
        if len(train) > 1:
            p.setPen(QPen(TRAIN_COLOR, 1.5))
            p.drawPolyline(QPolygonF([xy(s, v) for s, v in train]))
        p.setPen(QPen(VAL_COLOR, 1.5))
        p.setBrush(VAL_COLOR)
        if len(self.val) > 1:
            p.drawPolyline(QPolygonF([xy(s, v) for s, v in self.val]))
        for s, v in self.val:
            p.drawEllipse(xy(s, v), 2.5, 2.5)
        legend = QRectF(plot.right() - 150, plot.top() + 2, 146, 14)
        p.setPen(QPen(TRAIN_COLOR))
        p.drawText(legend, Qt.AlignLeft, "train")
        p.setPen(QPen(VAL_COLOR))
        p.drawText(legend, Qt.AlignRight, "validation")


class NoisePlot(QWidget):
    """The noise autocorrelation as a grid of lags (centre = lag 0), with the training blind spot
    outlined: every correlated lag should fall inside it."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFixedSize(130, 130)
        self.autocorrelation: np.ndarray | None = None
        self.blind_spot = 0

    def set_result(self, autocorrelation, blind_spot) -> None:
        self.autocorrelation = None if autocorrelation is None else np.asarray(autocorrelation, float)
        self.blind_spot = tuple(blind_spot) if isinstance(blind_spot, (tuple, list)) else int(blind_spot)
        self.update()

    def paintEvent(self, event):  # noqa: N802 (Qt)
        p = QPainter(self)
        size = min(self.width(), self.height())
        a = self.autocorrelation
        if a is None:
            p.setPen(QPen(TEXT_COLOR))
            p.drawText(QRectF(0, 0, size, size), Qt.AlignCenter | Qt.TextWordWrap, "noise\nautocorrelation")
            return
        n = a.shape[0]
        cell = size / n
        p.setFont(QFont(p.font().family(), 7))
        for i in range(n):
            for j in range(n):
                v = float(np.clip(a[i, j], -1, 1))
                g = int(255 * min(1.0, abs(v) / 0.5))  # saturates at |corr| 0.5 (the centre is 1)
                color = QColor(g, g // 3, 40) if v >= 0 else QColor(40, g // 2, g)
                r = QRectF(j * cell, i * cell, cell, cell)
                p.fillRect(r, color)
                if cell >= 22 and (i != n // 2 or j != n // 2):  # values only where they fit
                    p.setPen(QPen(TEXT_COLOR))
                    p.drawText(r, Qt.AlignCenter, f"{v:.2f}".replace("0.", ".") if abs(v) >= 0.005 else "0")
        c = n // 2
        sy, sx = self.blind_spot if isinstance(self.blind_spot, tuple) else (self.blind_spot,) * 2
        if sy > 0 and sx > 0:  # the (y x x) rectangle the training blind spot hides
            hy, hx = min(sy // 2, c), min(sx // 2, c)
            p.setPen(QPen(QColor(80, 255, 120), 2))
            p.setBrush(Qt.NoBrush)
            p.drawRect(QRectF((c - hx) * cell, (c - hy) * cell, (2 * hx + 1) * cell, (2 * hy + 1) * cell))
