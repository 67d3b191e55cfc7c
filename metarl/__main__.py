"""``python -m metarl``: the ``metarl`` command (:mod:`metarl.commands`), also as a ``torchrun``
module (``torchrun --nproc-per-node 2 -m metarl train supervised …``)."""

from metarl.commands import console

console()
