"""Reference-based video colorization with ColorMNet.

The package is split by job: ``video`` (decode/encode, no torch), ``reference`` (loading the
exemplar image), ``color`` (LAB conversions on tensors), ``model`` (the network as named stages),
``memory`` (the XMem-style memory bank), ``engine`` (drives one video through the model),
``weights`` (find, download, verify, convert checkpoints), ``cli`` (the ``colorize`` command).
"""

__version__ = "0.1.0"
