"""Command line: ``python -m d3dface <command> ...``.

Commands:
    info          what a saved face model holds (sizes, regions, landmarks, files, licence)
    build-model   derive the default face model from the ICT Face Model
    fit           fit a 3D face to a photo (stage 1): mesh, overlay and numbers
    mask          find the hidden part of a face: mask.png (white = hidden), overlay.png and
                  mask.json (its summary)
    train-vae     train the Mesh-VAE (see ``python -m d3dface train-vae --help``)
    reconstruct   photo(s) -> N diverse 3D completions, pictures and metrics (the whole method)
    interpolate   meshes between two samples of a reconstruct result (latent blends)
    push-to-hub   upload the weights, configs and model card to a Hugging Face Hub repo
    push-space    publish the app (space_app.py, the package, weights, examples) as a Space
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from d3dface.diversity import DiversitySettings
from d3dface.fitting import DEFAULT_ITERATIONS as DEFAULT_FIT_ITERATIONS
from d3dface.hub import CHECKPOINTS_DIR
from d3dface.out_folder import check_out_folder
from d3dface.perception.landmarks import size_rank
from d3dface.pipeline import MASK_METHODS, Diverse3DFace, run_settings
from d3dface.result_files import (
    DEFAULT_MESH_FORMATS,
    METRICS_NAME,
    check_inputs_kept,
    mesh_suffixes,
)
from d3dface.space_upload import PROJECT_DIR

DEFAULT_FACE_MODEL = CHECKPOINTS_DIR / "face_model"


def _non_negative_int(text: str) -> int:
    """argparse type: a whole number, 0 or more."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _cmd_info(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from d3dface.facemodel.model import FaceModel
    from d3dface.facemodel.storage import face_model_dir

    directory = face_model_dir(args.model, force_download=args.force_download)
    model = FaceModel.from_pretrained(directory)
    config = json.loads((directory / "config.json").read_text())
    files = sorted(p for p in directory.iterdir() if p.is_file())
    lines = [
        f"face model      {model.name}  ({directory})",
        f"vertices        {model.n_vertices}",
        f"faces           {model.n_faces}",
        f"identity modes  {model.n_identity}",
        f"expression      {model.n_expression}  ({', '.join(model.expression_names[:4])}, ...)",
        f"regions         {model.n_regions}  ({', '.join(model.region_names)})",
        f"local models    {model.n_local} components per region",
        f"landmarks       {model.n_landmarks} (mediapipe face mesh embedding)",
        f"joints          {', '.join(model.joint_names) or 'none (jaw via expression jawOpen)'}",
        "files",
        *(f"  {p.name:<22} {tqdm.format_sizeof(p.stat().st_size, 'B'):>8}" for p in files),
        f"licence         {config.get('licence', 'not recorded')}",
    ]
    report = directory / "build_report.json"
    if report.is_file():
        stats = json.loads(report.read_text())
        kept = stats.get("local_variance_kept", {})
        lines.append(
            "variance kept   " + ", ".join(f"{name} {value:.3f}" for name, value in kept.items())
        )
        reprojection = stats.get("reprojection", {})
        if reprojection:
            lines.append(
                f"landmark error  median {reprojection['median_px']:.2f} px, mean "
                f"{reprojection['mean_px']:.2f} px on {reprojection['renders']} held-out "
                f"{reprojection['image_px']} px renders"
            )
    print("\n".join(lines))
    return 0


def _cmd_build_model(args: argparse.Namespace) -> int:
    from d3dface.facemodel.build import BuildSettings, build_face_model

    check_out_folder(args.out, "--out")
    settings = BuildSettings.quick() if args.quick else BuildSettings()
    report = build_face_model(args.ict, args.out, settings, progress=not args.quiet)
    print(json.dumps({"out": str(args.out), **report.__dict__}, indent=2))
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    from d3dface.facemodel.model import FaceModel
    from d3dface.fit_outputs import FIT_FILES, write_fit_outputs
    from d3dface.fitting import FitSettings, fit_face
    from d3dface.imageio import load_image
    from d3dface.perception.landmarks import choose_face
    from d3dface.perception.occlusion_mask import load_mask
    from d3dface.perception.working_size import width_height, working_photo

    check_out_folder(args.out, "--out")
    check_inputs_kept(args.out, FIT_FILES, {"photo": args.image, "mask": args.mask})
    settings = FitSettings(use_local=not args.global_only)
    if args.iterations is not None:
        settings = replace(settings, iterations=args.iterations)
    given = load_image(args.image)
    mask = None if args.mask is None else load_mask(args.mask, given.shape)
    model = FaceModel.from_pretrained(args.model, force_download=args.force_download)
    face = choose_face(given, args.face_index)
    work = working_photo(given, face.landmarks, mask)
    photo = work.photo
    fit = fit_face(photo, model, work.mask, work.landmarks, settings=settings)
    inputs = {
        "image": str(args.image),
        "mask": None if args.mask is None else str(args.mask),
        "face_index": args.face_index,
        "face": face.summary(),
        "photo_size_px": width_height(given.shape),
        "working_size_px": width_height(photo.shape),
    }
    summary = write_fit_outputs(fit, model, photo, args.out, inputs)
    print(
        f"wrote {', '.join(summary['files'])} to {args.out}: landmark error "
        f"{summary['landmark_error_px']:.2f} px on {summary['visible_landmarks']} visible "
        f"landmarks, {100 * summary['visible_vertex_fraction']:.1f}% of vertices visible, "
        f"fit {summary['timings_s']['total']:.1f} s"
    )
    _print_face_note(face.summary())
    return 0


def _cmd_mask(args: argparse.Namespace) -> int:
    from d3dface.facemodel.model import FaceModel
    from d3dface.imageio import load_image
    from d3dface.mask_outputs import MASK_FILES, write_mask_outputs
    from d3dface.perception.landmarks import choose_face
    from d3dface.perception.occlusion import segment_occlusion

    check_out_folder(args.out, "--out")
    check_inputs_kept(args.out, MASK_FILES, {"photo": args.image})
    photo = load_image(args.image)
    model = FaceModel.from_pretrained(args.model, force_download=args.force_download)
    face = choose_face(photo, args.face_index)
    found = segment_occlusion(photo, model, landmarks=face.landmarks, method=args.method)
    inputs = {
        "image": str(args.image),
        "face_index": args.face_index,
        "face": face.summary(),
        "method": args.method,
    }
    summary = write_mask_outputs(found, photo, args.out, inputs)
    print(
        f"wrote {', '.join(summary['files'])} to {args.out}: the {found.source} mask hides "
        f"{100 * found.hidden_fraction:.1f}% of the face and {summary['hidden_landmarks']} of "
        f"{summary['landmark_count']} landmarks ({found.timings['total']:.1f} s)"
    )
    for note in found.notes:
        print(f"note: {note}")
    _print_face_note(face.summary())
    return 0


def _cmd_reconstruct(args: argparse.Namespace) -> int:
    from d3dface.batch import list_inputs, reconstruct_all

    options = {
        "n": args.n,
        "k": args.k,
        "n_sigma": args.n_sigma,
        "seed": args.seed,
        "iterations": args.iterations,
        "fit_iterations": args.fit_iterations,
        "face_index": args.face_index,
        "mask_method": args.mask_method,
    }
    # every option is checked before the models load and any photo runs
    run_settings(
        args.n,
        args.k,
        args.n_sigma,
        args.seed,
        args.iterations,
        args.fit_iterations,
        args.mask_method,
    )
    formats = mesh_suffixes(args.formats)
    check_out_folder(args.out, "--out")
    inputs = list_inputs(args.image, args.mask, args.out)
    for note in inputs.ignored:
        print(f"ignored {note}", file=sys.stderr)
    folder = args.image.is_dir()
    if folder and (args.out / METRICS_NAME).is_file():
        print(
            f"note: '{args.out}' holds a single photo's earlier result; it stays as it is, and "
            "each photo of the folder writes into a subfolder beside it",
            file=sys.stderr,
        )
    pipeline = Diverse3DFace.from_pretrained(
        args.model, device=args.device, force_download=args.force_download
    )
    summary = reconstruct_all(
        pipeline,
        inputs.items,
        options,
        formats,
        show_progress=not args.quiet,
        summary_dir=args.out if folder else None,
    )
    done = summary["done"]
    shared_notes = _notes_of_every_photo(done)
    for entry in done:
        print(
            f"{entry['image']} -> {entry['out_dir']}: {_figures(entry)}, {entry['seconds']:.1f} s"
        )
        for note in entry["mask_notes"]:
            if note not in shared_notes:
                print(f"note: {entry['image']}: {note}")
        _print_face_note(entry["face"], entry["image"])
    for note in shared_notes:
        print(f"note: all {len(done)} photos: {note}")
    failed = summary["failed"]
    if not failed:
        return 0
    if not folder:
        print(f"error: {failed[0]['image']}: {failed[0]['error']}", file=sys.stderr)
        return 2
    # each failure was reported as it happened; they are listed in summary.json too
    print(
        f"error: {len(failed)} of {len(inputs.items)} photos failed (see above, and "
        f"{args.out / 'summary.json'})",
        file=sys.stderr,
    )
    return 1


def _notes_of_every_photo(done: Sequence[Mapping[str, Any]]) -> list[str]:
    """The mask notes that every photo of a run of several got (the automatic mask's
    method, say), to print once rather than once per photo; none for a single photo."""
    if len(done) < 2:
        return []
    first, *others = (entry["mask_notes"] for entry in done)
    return [note for note in first if all(note in notes for notes in others)]


def _print_face_note(face: Mapping[str, Any], image: str | None = None) -> None:
    """For a photo with several faces, a note of which one was used and how to pick another.

    Args:
        face: :meth:`~d3dface.perception.landmarks.ChosenFace.summary` of the face used.
        image: the photo, named in the note when a command ran on several.
    """
    if face["faces_found"] < 2:
        return
    other = 1 if face["index"] == 0 else 0
    where = "" if image is None else f"{image}: "
    print(f"note: {where}used {face['which']}; --face-index {other} takes {size_rank(other)}")


def _cmd_interpolate(args: argparse.Namespace) -> int:
    from d3dface.latents_file import blend_shares, check_pair, load_latents, write_blends

    shares = blend_shares(args.t)
    formats = mesh_suffixes(args.formats)
    # a missing or damaged file, or samples it cannot blend, are named before the models load
    check_pair(load_latents(args.result), args.result, args.first, args.second)
    out = args.result if args.out is None else args.out
    check_out_folder(out, "--out")
    pipeline = Diverse3DFace.from_pretrained(
        args.model, device=args.device, force_download=args.force_download
    )
    paths = write_blends(pipeline, args.result, args.first, args.second, shares, formats, out)
    print(
        f"{len(shares)} blend{'s' if len(shares) > 1 else ''} of samples {args.first} and "
        f"{args.second} -> {out}: "
        f"{', '.join(path.name for path in paths)}"
    )
    return 0


def _figures(entry: dict) -> str:
    """A finished photo's metrics in words (``reconstruct_all``'s ``done`` entry)."""
    metrics = entry["metrics"]
    if metrics:
        return (
            f"ASD-V {metrics['asd_v_mm']:.2f} mm, ASD-O {metrics['asd_o_mm']:.2f} mm, "
            f"ratio {metrics['asd_ratio']:.1f}"
        )
    if entry["n_samples"] == 1:
        return "one sample, so no diversity metrics"
    if entry["mask_source"] == "user":
        return (
            "the given mask hides no part of the face, so the samples are alike and have no "
            "diversity metrics; paint white in it what covers the face"
        )
    return (
        "nothing was hidden, so the samples are alike and have no diversity metrics; "
        "give --mask (white = hidden) to name what covers the face"
    )


def _cmd_push_to_hub(args: argparse.Namespace) -> int:
    from d3dface.hub import push_to_hub

    url = push_to_hub(
        args.repo_id,
        source=args.source,
        model_card=args.model_card,
        token=args.token,
        private=args.private,
    )
    print(f"uploaded {args.source} to {args.repo_id}: {url}")
    return 0


def _cmd_push_space(args: argparse.Namespace) -> int:
    from d3dface.space_upload import push_space

    url, files = push_space(
        args.repo_id, project=args.project, token=args.token, private=args.private
    )
    print(f"published {len(files)} files of {args.project} as the Space {args.repo_id}: {url}")
    return 0


def _add_face_model_option(command: argparse.ArgumentParser) -> None:
    """``--model``: the face model a command loads (a directory or a Hub repo id)."""
    command.add_argument(
        "--model",
        default=str(DEFAULT_FACE_MODEL),
        help="face model directory or Hub repo id; a pipeline's (such as checkpoints/ or the "
        "published repo) gives its face model (default: the shipped checkpoints/face_model)",
    )
    _add_force_download_option(command)


def _add_pipeline_options(command: argparse.ArgumentParser, what_runs: str) -> None:
    """``--model`` (a pipeline), ``--force-download`` and ``--device`` of a command that loads
    the whole pipeline; ``what_runs`` says what ``--device`` moves."""
    command.add_argument(
        "--model",
        default=str(CHECKPOINTS_DIR),
        help="pipeline directory or Hub repo id (default: the shipped checkpoints/)",
    )
    _add_force_download_option(command)
    command.add_argument(
        "--device",
        default="cpu",
        help=f"where {what_runs}: cpu (default, reproducible) or cuda",
    )


def _add_upload_options(command: argparse.ArgumentParser, what: str, short: str) -> None:
    """``--repo-id``, ``--token`` and ``--private`` of a command that uploads to the Hub
    (``what``: the kind of repo, e.g. "Space"; ``short``: its name in "create the ... as
    private")."""
    command.add_argument("--repo-id", required=True, help=f"the {what}, 'owner/name'")
    command.add_argument("--token", help="Hub token (default: the logged-in user's)")
    command.add_argument("--private", action="store_true", help=f"create the {short} as private")


def _add_face_index_option(command: argparse.ArgumentParser) -> None:
    """``--face-index``: which face of the photo, 0 = the largest."""
    command.add_argument(
        "--face-index", type=_non_negative_int, default=0, help="0 = the largest face (default)"
    )


def _add_force_download_option(command: argparse.ArgumentParser) -> None:
    """``--force-download``: fetch a Hub ``--model``'s files again even when cached."""
    command.add_argument(
        "--force-download",
        action="store_true",
        help="with a Hub repo id as --model: download its files again even when they are in "
        "the local Hub cache (replaces a corrupt cached file)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per job."""
    parser = argparse.ArgumentParser(
        prog="python -m d3dface",
        description="Diverse 3D face reconstructions from one partly hidden face photo.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    info = commands.add_parser("info", help="print what a saved face model holds")
    _add_face_model_option(info)
    info.set_defaults(run=_cmd_info)

    build = commands.add_parser("build-model", help="derive the face model from the ICT model")
    build.add_argument("--ict", required=True, help="folder holding ict_face_model.npz")
    build.add_argument("--out", required=True, type=Path, help="output directory")
    build.add_argument("--quick", action="store_true", help="few renders/samples (for tests)")
    build.add_argument("--quiet", action="store_true", help="no progress output")
    build.set_defaults(run=_cmd_build_model)

    fit = commands.add_parser("fit", help="fit a 3D face to a photo (stage 1)")
    fit.add_argument("image", type=Path, help="the photo (JPEG, PNG, ...)")
    fit.add_argument(
        "--mask", type=Path, help="occlusion mask image of the photo's size (white = hidden)"
    )
    _add_face_index_option(fit)
    fit.add_argument(
        "--iterations",
        type=int,
        help=f"non-rigid iterations (default: {DEFAULT_FIT_ITERATIONS})",
    )
    fit.add_argument("--global-only", action="store_true", help="skip the local models")
    fit.add_argument("--out", required=True, type=Path, help="output directory")
    _add_face_model_option(fit)
    fit.set_defaults(run=_cmd_fit)

    mask = commands.add_parser("mask", help="find what hides a face (mask, overlay, summary)")
    mask.add_argument("image", type=Path, help="the photo (JPEG, PNG, ...)")
    mask.add_argument(
        "--method",
        choices=["auto", "model", "facexlib"],
        default="auto",
        help="facexlib's face parser (optional extra) or the model-based segmentation; "
        "auto: facexlib where it runs, else the model (default)",
    )
    _add_face_index_option(mask)
    mask.add_argument("--out", required=True, type=Path, help="output directory")
    _add_face_model_option(mask)
    mask.set_defaults(run=_cmd_mask)

    recon = commands.add_parser(
        "reconstruct", help="photo(s) -> N diverse 3D completions (the whole method)"
    )
    recon.add_argument("image", type=Path, help="a photo or a folder of photos")
    recon.add_argument(
        "--mask",
        type=Path,
        help="occlusion mask of the photo's size (white = hidden); for a folder, a folder of "
        "masks named after the photos (a.jpg -> a_mask.png). Default: found automatically",
    )
    recon.add_argument("-n", type=int, default=8, help="number of completions (default 8)")
    recon.add_argument("--k", type=float, default=0.5, help="DPP similarity scale (default 0.5)")
    recon.add_argument(
        "--n-sigma",
        type=float,
        default=3.0,
        help="DPP quality threshold: larger = more diverse, less typical (default 3)",
    )
    recon.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    recon.add_argument(
        "--iterations",
        type=int,
        help=f"diversity iterations (default: {DiversitySettings.iterations})",
    )
    recon.add_argument(
        "--fit-iterations",
        type=int,
        help=f"stage-1 fitting iterations (default: {DEFAULT_FIT_ITERATIONS})",
    )
    _add_face_index_option(recon)
    recon.add_argument(
        "--mask-method",
        default="auto",
        choices=MASK_METHODS,
        help="automatic mask method when --mask is not given (default auto)",
    )
    recon.add_argument(
        "--formats",
        default=",".join(DEFAULT_MESH_FORMATS),
        help="mesh formats of the samples: glb,ply,obj (default %(default)s)",
    )
    recon.add_argument("--quiet", action="store_true", help="no progress bar")
    recon.add_argument(
        "--out",
        required=True,
        type=Path,
        help="output directory: a photo's files go into it, a folder's photos into one "
        "subfolder each; an earlier result there is replaced",
    )
    _add_pipeline_options(recon, "the fit and the diversity stage run")
    recon.set_defaults(run=_cmd_reconstruct)

    blend = commands.add_parser(
        "interpolate",
        help="meshes between two samples of a reconstruct result, decoded from their latent "
        "codes (latents.safetensors)",
    )
    blend.add_argument("result", type=Path, help="a folder that reconstruct wrote")
    blend.add_argument("first", type=int, help="a sample's number (sample_XX)")
    blend.add_argument("second", type=int, help="another sample's number")
    blend.add_argument(
        "--t",
        default="0,0.25,0.5,0.75,1",
        help="the blends: each one's share of the second sample, 0 to 1 (default %(default)s)",
    )
    blend.add_argument(
        "--formats",
        default="glb",
        help="mesh formats of the blends: glb,ply,obj (default %(default)s)",
    )
    blend.add_argument(
        "--out", type=Path, help="output directory (default: the result folder itself)"
    )
    _add_pipeline_options(blend, "the Mesh-VAE decodes")
    blend.set_defaults(run=_cmd_interpolate)

    push = commands.add_parser(
        "push-to-hub", help="upload the weights, configs and model card to a Hub repo"
    )
    _add_upload_options(push, "Hub repo", "repo")
    push.add_argument(
        "--source",
        type=Path,
        default=CHECKPOINTS_DIR,
        help="pipeline directory to upload (default: the shipped checkpoints/)",
    )
    push.add_argument("--model-card", type=Path, help="model card (default: model_card.md)")
    push.set_defaults(run=_cmd_push_to_hub)

    space = commands.add_parser(
        "push-space",
        help="publish the app as a Gradio Space: space_app.py, the package, the weights, the "
        "examples and the README (with the Space's front matter)",
    )
    _add_upload_options(space, "Space", "Space")
    space.add_argument(
        "--project",
        type=Path,
        default=PROJECT_DIR,
        help="the project folder holding space_app.py (default: this d3dface's)",
    )
    space.set_defaults(run=_cmd_push_space)

    # listed for --help; main() hands its arguments to d3dface.vae.train.main untouched
    commands.add_parser("train-vae", help="train the Mesh-VAE (options: train-vae --help)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; user errors print one clear line and exit with status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train-vae"]:
        from d3dface.vae.train import main as train_main

        return train_main(argv[1:])
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # writing failed part-way (disk full, folder removed, ...)
        print(f"error: could not write a file: {err}; check --out and free space", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
