"""The simulator's oracle as a forecaster: ``E[rv_h | latent state at t]`` in closed form (DESIGN section 4).

It is the physical limit every model is measured against (the oracle gap of DESIGN section 6). It reads
``ModelData.truth`` (``oracle_rv_h{h}``), which exists on simulated markets only.
"""

from __future__ import annotations

from models.base import FloatArray, Forecaster, IntArray, ModelData, ModelError


class Oracle(Forecaster):
    family = "oracle"

    def _fit(self, data: ModelData, rows: IntArray) -> None:
        self._columns(data)

    def _predict_var(self, data: ModelData, rows: IntArray) -> dict[int, FloatArray]:
        columns = self._columns(data)
        return {h: data.truth[columns[h]].to_numpy(dtype=float)[rows] for h in self.horizons_}

    def _columns(self, data: ModelData) -> dict[int, str]:
        if data.truth is None:
            raise ModelError("the oracle needs the simulator's truth: it exists on simulated markets only")
        columns = {h: f"oracle_rv_h{h}" for h in self.horizons_}
        missing = [c for c in columns.values() if c not in data.truth]
        if missing:
            raise ModelError(f"the truth lacks {missing}: simulate with these horizons (simulate --horizons)")
        return columns
