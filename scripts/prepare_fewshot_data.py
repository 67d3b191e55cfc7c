#!/usr/bin/env python
"""Convert the few-shot image datasets once into the caches the training scripts read.

The ``metarl data`` command under this script's name: the same function, the same flags
(``metarl data --help`` describes them).

Examples::

    # Omniglot: images_background.zip / images_evaluation.zip (or their extracted folders)
    # in the data root are converted to npz; --download fetches the zips when online.
    python scripts/prepare_fewshot_data.py omniglot --data-root ~/data/omniglot --download

    # MiniImagenet: JPEGs anywhere under --images-dir, regrouped by Ravi & Larochelle's lists.
    python scripts/prepare_fewshot_data.py miniimagenet --images-dir ~/split_minidataset \\
        --data-root ~/data/miniimagenet --csv-dir ../shared/data/miniimagenet
"""

from __future__ import annotations

from metarl.commands import script_main

main = script_main("data")

if __name__ == "__main__":
    main()
