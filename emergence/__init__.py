"""emergence: a reproducible experiment suite for emergence-promoting initialization.

Li, George, Silva, "Advancing Neural Network Performance through Emergence-Promoting Initialization Scheme",
arXiv 2407.19044. Entry point: ``python -m emergence.train arch=mlp init=emergence``; see README.md.
"""

__version__ = "0.1.0"
