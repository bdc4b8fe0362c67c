"""MLflow pyfunc model defined by code (no cloudpickle): loads a :class:`ModelBundle` artifact.

MLflow executes this file when the model is loaded; the bundle's weights and JSON config come from
the ``bundle`` artifact, and the project's code travels in the model's ``code`` folder.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from trading_assets.training.bundle import ModelBundle


class BundleModel(PythonModel):
    """Takes the ``features`` asset's frame, returns a ``prediction`` column aligned to its rows."""

    def load_context(self, context: Any) -> None:
        self.bundle = ModelBundle.load(context.artifacts["bundle"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return self.bundle.predict(model_input).to_frame()


mlflow.models.set_model(BundleModel())
