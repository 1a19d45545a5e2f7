"""``python -m dmfn_lightning.data.export_demo --export DIR``: the held-out demo photos and masks as PNG files."""

from __future__ import annotations

from collections.abc import Sequence

from dmfn_lightning.data.demo import VAL_PHOTOS, export_heldout_photos


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Export the held-out demo photos and free-form masks as PNGs.")
    parser.add_argument("--export", required=True, metavar="DIR", help="output folder (images/ and masks/)")
    parser.add_argument("--short-side", type=int, default=160, help="resize photos to this short side (px)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated masks")
    args = parser.parse_args(argv)
    images_dir, masks_dir = export_heldout_photos(args.export, args.short_side, args.seed)
    print(f"wrote {len(VAL_PHOTOS)} held-out photos to {images_dir} and their masks to {masks_dir}")


if __name__ == "__main__":
    main()
