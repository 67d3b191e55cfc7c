"""The maths of MAML: parameter dictionaries, the inner loop, the outer objectives.

Nothing here knows about runs, environments or datasets: it imports only torch and
:mod:`metarl.errors`, so it can be read (and tested) on its own. The public names are
re-exported by :mod:`metarl`.
"""
