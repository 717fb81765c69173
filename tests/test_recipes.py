"""recipes/*.toml: every file is a valid run of its script, the script's defaults are the tutorial's
recipe, flags override a recipe, a bad recipe is one sentence naming the file, and each bundled
model's card names the recipe file and the one command it came from."""

from pathlib import Path

import pytest

import train_mnist
import train_pix2pix

REPO = Path(__file__).resolve().parent.parent
RECIPES = sorted((REPO / "recipes").glob("*.toml"))
SCRIPT = {"gan": train_mnist, "cgan": train_mnist}  # the rest are train_pix2pix's


def script(recipe):
    return SCRIPT.get(recipe.stem, train_pix2pix)


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.stem for r in RECIPES])
def test_each_recipe_is_a_run_of_its_script_and_says_its_command(recipe):
    args = script(recipe).parse_args(["--recipe", str(recipe)])
    command = f"python {script(recipe).__name__}.py --recipe recipes/{recipe.name}"
    assert command in recipe.read_text()  # the file's own comment gives the command that runs it
    assert args.command == f"python {script(recipe).__name__}.py --recipe {recipe}"  # nothing beside the file
    assert str(args.out).startswith("runs/")


def test_the_scripts_defaults_are_the_tutorials_recipe():
    """`python train_pix2pix.py --epochs 128`, the mission's command, is recipes/pix2pix-tutorial.toml."""
    plain = vars(train_pix2pix.parse_args(["--epochs", "128"]))
    recipe = vars(train_pix2pix.parse_args(["--recipe", str(REPO / "recipes" / "pix2pix-tutorial.toml")]))
    for key in ("recipe", "command"):
        plain.pop(key), recipe.pop(key)
    assert plain == recipe


def test_flags_override_the_recipe_and_a_bad_recipe_names_its_file(tmp_path, capsys):
    unet = REPO / "recipes" / "pix2pix-unet.toml"
    args = train_pix2pix.parse_args(["--recipe", str(unet), "--epochs", "40", "--no-hints", "--lambda-hint", "0"])
    assert (args.epochs, args.hints, args.ngf, args.lambda_chroma) == (40, False, 32, 10)  # the rest from the file
    assert args.command == f"python train_pix2pix.py --recipe {unet} --no-hints --lambda-hint 0.0 --epochs 40"
    bad = tmp_path / "bad.toml"
    for text, said in (('ngf = "wide"', "ngf = 'wide' is not a valid value"),
                       ("d-scales = 3", "'d-scales' is not a flag of this script"),
                       ("hints = 1", "hints must be true or false"),
                       ('generator = "resnet"', "generator must be one of unet, encoder-decoder"),
                       ("ngf = ", "cannot read it")):
        bad.write_text(text + "\n")
        with pytest.raises(SystemExit) as e:
            train_pix2pix.parse_args(["--recipe", str(bad)])
        err = capsys.readouterr().err
        assert e.value.code == 2 and f"--recipe {bad}: {said}" in err, (text, err)


@pytest.mark.parametrize("name, recipe", [("gan", "gan"), ("cgan", "cgan"), ("pix2pix-unet", "pix2pix-unet"),
                                          ("pix2pix-encoder-decoder", "pix2pix-encoder-decoder")])
def test_each_bundled_models_card_names_its_recipe_file(name, recipe):
    card = (REPO / "weights" / name / "README.md").read_text()
    assert f"recipes/{recipe}.toml" in card, name
