"""dnntune networks as scikit-learn estimators.

``DNNClassifier`` and ``DNNRegressor`` train one network configuration with dnntune's own
preprocessing (fitted in ``fit`` only) and training, with early stopping on a held-out
``validation_fraction`` of the rows. ``TunedDNNClassifier`` and ``TunedDNNRegressor`` run a
dnntune study in ``fit`` (the objective of ``dnntune tune``: cross-validation, pruning across
folds, the warm start) and predict with its delivered model. All four take NumPy arrays (every
column a number; missing values allowed) and pandas DataFrames (text, dates and missing values
handled as ``dnntune tune`` does), and work in ``Pipeline``, ``cross_val_score``,
``GridSearchCV`` and Optuna's ``OptunaSearchCV``.

``save(path)`` writes a model folder (safetensors + JSON, the format of a tuned run's model) and
:func:`load` reads one back, from an estimator or from ``dnntune tune``, as an estimator, so no
estimator ever needs to be pickled.

Modules: ``_base`` (reading ``X``, predicting, saving), ``_targets`` (classes and values of
``y``), ``_single`` (one configuration), ``_tuned`` (a study), ``_save`` and ``_folder`` (to
and from a model folder).
"""

from dnntune.sklearn._folder import load
from dnntune.sklearn._single import DNNClassifier, DNNRegressor
from dnntune.sklearn._tuned import TunedDNNClassifier, TunedDNNRegressor

__all__ = [
    "DNNClassifier",
    "DNNRegressor",
    "TunedDNNClassifier",
    "TunedDNNRegressor",
    "load",
]
