"""Write scikit-image's sample images to datasets/skimage/{train,val} (the quickstart's data)."""
import argparse
import os

from restore.data.samples import write_skimage_samples

if __name__ == "__main__":
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default=os.path.join(root, "datasets", "skimage"), help="output folder")
    args = p.parse_args()
    done = write_skimage_samples(args.out)
    print(f"{len(done['train'])} training and {len(done['val'])} validation images in {args.out}")
