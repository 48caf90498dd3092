"""Training: the fit loop, Keras-style callbacks, optimizers and schedules."""
from .callbacks import (Callback, EarlyStopping, FreezeAfter, Lookahead, ModelCheckpoint,
                        ReduceLROnPlateau)
from .loop import TTA_MODES, History, NonFiniteLossError, Trainer, evaluate, predicted_labels, tta_logits
from .mix import BatchMix
from .optim import (build_optimizer, build_scheduler, classification_loss, load_optimizer_state,
                    parameter_groups, weight_decay_groups)

__all__ = ["BatchMix", "Callback", "EarlyStopping", "FreezeAfter", "Lookahead", "ModelCheckpoint",
           "ReduceLROnPlateau", "History", "NonFiniteLossError", "Trainer", "evaluate", "predicted_labels",
           "tta_logits", "TTA_MODES", "build_optimizer",
           "build_scheduler", "classification_loss", "load_optimizer_state", "parameter_groups",
           "weight_decay_groups"]
