"""emergence: a reproducible experiment suite for emergence-promoting initialization.

Li, George, Silva, "Advancing Neural Network Performance through Emergence-Promoting Initialization Scheme",
arXiv 2407.19044. Entry point: ``python -m emergence.train arch=mlp init=emergence``; see README.md.

Importing the package registers the config resolvers used in conf/ (before Hydra composes anything):
``${lr_for_batch:0.1,${trainer.batch_size}}`` = 0.1 * batch / 128 (GradInit's linear scaling rule) and
``${lr_times:${optim.lr},2}`` = 2 * lr (GradInit's IWSLT eta),
``${if_nobn:${arch.norm},1.0}`` = 1.0 for networks without BatchNorm, else null (the recipe's gradient clipping).
"""

from omegaconf import OmegaConf

__version__ = "0.1.0"

OmegaConf.register_new_resolver("lr_for_batch", lambda lr, batch: float(lr) * int(batch) / 128, replace=True)
OmegaConf.register_new_resolver("lr_times", lambda lr, k: float(lr) * float(k), replace=True)
OmegaConf.register_new_resolver("if_nobn", lambda norm, value: value if norm == "none" else None, replace=True)
