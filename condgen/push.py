"""Push a saved model folder to the Hugging Face Hub: what --push-to-hub does after training, for a
run trained offline or whose push failed.

    python -m condgen.push runs/cgan/generator you/condgen-cgan
    python -m condgen.push runs/pix2pix-unet/discriminator you/condgen-pix2pix-discriminator

Uploads config.json, model.safetensors, README.md and the sample PNGs in one commit (condgen.hub.push).
A module of its own: condgen/__init__ imports condgen.hub, so `python -m condgen.hub` would run a
second copy of it, and runpy warns about that.
"""

import argparse
from pathlib import Path

from .hub import push, push_error


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m condgen.push", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", help="a model folder (config.json + model.safetensors), e.g. runs/cgan/generator")
    p.add_argument("repo_id", help="user/name on the Hub")
    p.add_argument("--message", default="condgen: upload", help="commit message (default: %(default)s)")
    args = p.parse_args(argv)
    if not (Path(args.folder) / "config.json").is_file():
        p.error(f"no such model folder (config.json + model.safetensors): {args.folder}")
    if why := push_error(args.repo_id, later=None):
        p.error(why)
    push(args.folder, args.repo_id, args.message)
    print(f"pushed {args.folder} to {args.repo_id}")


if __name__ == "__main__":
    main()
