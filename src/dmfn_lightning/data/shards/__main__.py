"""``python -m dmfn_lightning.data.shards write data=<dataset> out=DIR ...`` (:mod:`dmfn_lightning.data.shards.cli`)."""

from dmfn_lightning.data.shards.cli import main

if __name__ == "__main__":
    main()
