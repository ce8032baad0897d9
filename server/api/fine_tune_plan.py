"""Turn a `POST /v1/fine_tuning/jobs` body into a job and what its trainer is started with.

`model` is a persona (trained on its own dataset, or on uploaded files), one of its checkpoints
(`juni@run-1:best`: the run starts from those weights, as `persona train --from` does), or the
base model, whose `suffix` then names a new persona with a minimal card. `method.type` `dpo` and
`orpo` train on preference pairs (the persona's `preference.jsonl`, or an uploaded file in
OpenAI's DPO format). Files are copied into the job's own folder (or the new persona's), so
deleting an upload later never breaks a job's resume.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import tomlkit

from adapters.registry import (
    MAX_LABEL,
    SAFE_NAME,
    Checkpoint,
    Registry,
    RegistryError,
    parse_model_id,
)
from adapters.training.config import ConfigError
from adapters.training.initial import checkpoint_shape, shape_clashes, with_init
from adapters.training.order import GuardRun, NewRun
from adapters.training.prepare import PrepareError, TrainRequest, new_config
from data.atomic import staged_folder, write_bytes, write_text
from data.card import NAME_PATTERN, CardError, PersonaCard, Training, load_card
from data.dataset import read_dataset
from data.home import personas_dir
from data.json_depth import check_depth
from data.personas import CARD, PREFERENCE, TRAIN_FILES, VALID, PersonaEntry
from data.problem import quote
from data.records import PreferenceRecord
from server.api.routes.files import read_file
from server.errors import InvalidRequest, ModelNotFoundError, UnsupportedError
from server.jobs.fine_tuning import new_job_id
from server.jobs.methods import PREFERENCE_METHODS, MethodError, plan_training
from server.jobs.store import TrainSpec
from server.jobs.types import CreateJobRequest, FileObject, FineTuningJob, Method
from server.state import ServerState

OWN_DATASET = "persona:"
"""`training_file` of a job that trains on the persona's own dataset on the server."""


def plan_fine_tune(
    state: ServerState, request: CreateJobRequest, jobs_root: Path
) -> tuple[FineTuningJob, TrainSpec]:
    """The new job and its trainer spec; 4xx errors for anything that cannot be trained."""
    if request.integrations:
        raise UnsupportedError(
            "integrations are not supported by this server", param="integrations"
        )
    files = state.files
    persona, start = _starting_point(state, request.model)
    kind = request.method.type if request.method is not None else "supervised"
    pairs = kind in PREFERENCE_METHODS
    if kind == "guard" and (persona is None or persona.card.guard is None):
        raise InvalidRequest(
            f"{request.suffix or request.model} has no [guard] in its card: a guard job trains "
            "the categories the card names",
            param="model",
        )
    own = request.training_file in (None, OWN_DATASET + (persona.name if persona else ""))
    train = None if own else read_file(files, request.training_file or "", "training_file")
    valid = (
        read_file(files, request.validation_file, "validation_file")
        if request.validation_file
        else None
    )
    for entry, param in ((train, "training_file"), (valid, "validation_file")):
        if entry is not None and entry.purpose != "fine-tune":
            raise InvalidRequest(
                f"{entry.id} has purpose {entry.purpose!r}, not 'fine-tune'",
                param=param,
                code="invalid_file",
            )
    if pairs and train is not None:
        _require_pairs(state, train, kind)
    if pairs and valid is not None:
        raise UnsupportedError(
            f"{kind} holds out the card's val_fraction of the pairs itself; a validation_file "
            "is not used",
            param="validation_file",
        )
    job_id = new_job_id()
    if persona is None and request.model not in (*state.base_ids(), "embedded"):
        raise ModelNotFoundError(
            f"The model {quote(request.model)} does not exist: "
            "fine-tune a persona or the base model.",
            param="model",
        )
    # As OpenAI takes a suffix with any model: with a persona it labels the run
    # (`run-N-<suffix>`), so it shows in `fine_tuned_model` (`parrot@run-4-grumpy`), an id served.
    suffix = request.suffix
    if persona is not None and suffix is not None and not _label_ok(suffix):
        raise InvalidRequest(
            f"suffix {suffix!r} labels the run of {persona.name}: use 1-{MAX_LABEL} "
            "lowercase letters, digits, '-' or '_'",
            param="suffix",
            code="invalid_value",
        )
    if persona is None:
        _check_new_persona(state, request, train)
    elif train is None and not _has_data(persona, pairs):
        raise InvalidRequest(
            f"{persona.name} has no {PREFERENCE if pairs else 'dataset'} on the server; upload "
            "one and pass training_file",
            param="training_file",
        )
    if kind == "dpo" and start is None:
        advice = (
            f"pass model as {persona.name}@run-N:best"
            if persona
            else f"train {request.suffix} with supervised or orpo first, then pass model as "
            f"{request.suffix}@run-N:best"
        )
        raise InvalidRequest(
            "dpo starts from a trained checkpoint, whose frozen weights are its reference "
            f"model: {advice}",
            param="model",
        )
    if request.iters is not None and request.iters < 1:
        raise InvalidRequest("iters must be at least 1", param="iters", code="invalid_value")
    # Everything is checked before anything is written: a refused request leaves nothing behind.
    try:
        method, training = plan_training(request, persona.card.training if persona else Training())
    except MethodError as exc:
        raise InvalidRequest(str(exc), param=exc.param, code="invalid_value") from None
    clashes = shape_clashes(checkpoint_shape(start), method.overrides) if start else []
    if clashes:
        raise InvalidRequest(
            f"{', '.join(clashes)} differ from the checkpoint {request.model} the job starts "
            "from; leave them out to take its own",
            param=clashes[0],
            code="invalid_value",
        )
    if kind == "guard" and (request.eval_checkpoints or start is not None):
        raise InvalidRequest(
            "a guard job trains a probe on the base model: it has no checkpoints to start from "
            "or to evaluate",
            param="eval_checkpoints" if request.eval_checkpoints else "model",
        )
    if request.eval_checkpoints and (persona is None or persona.eval_file is None):
        raise InvalidRequest(
            f"{request.suffix or request.model} has no eval suite (eval.jsonl) to score "
            "checkpoints with",
            param="eval_checkpoints",
        )
    data = PREFERENCE if pairs else "train.jsonl"
    if persona is None:
        card, folder = _new_persona(state, request, train, valid, data)
    elif train is not None:
        card, folder = persona.card, jobs_root / job_id / "data"
        write_bytes(folder / CARD, (persona.folder / CARD).read_bytes())
        _copy_data(state, folder, train.id, valid.id if valid else None, data)
    else:
        card, folder = persona.card, persona.folder
    names = (PREFERENCE,) if pairs else (*TRAIN_FILES, VALID)
    data_files = [str(p) for n in names if (p := folder / n).is_file()]
    job = FineTuningJob(
        id=job_id,
        created_at=int(time.time()),
        model=request.model,
        training_file=train.id if train else OWN_DATASET + card.name,
        validation_file=valid.id if valid else None,
        hyperparameters=method.hyperparameters,
        method=method.method or Method(type=kind),
        seed=training.seed,
        metadata=request.metadata,
        user_provided_suffix=request.suffix,
        persona=card.name,
    )
    spec = TrainSpec(
        persona=card.name,
        folder=str(folder),
        data_files=data_files,
        # A persona job's suffix labels its run; a base-model job's names the new persona.
        run=_trainer_run(
            state, request, folder, method.overrides, start, request.suffix if persona else None
        ),
        eval_checkpoints=request.eval_checkpoints,
        training=training,
    )
    return job, spec


def _trainer_run(
    state: ServerState,
    request: CreateJobRequest,
    folder: Path,
    overrides: dict[str, object],
    start: Checkpoint | None,
    label: str | None,
) -> NewRun | GuardRun:
    """The trainer's run for this job, resolved as `persona train` resolves its flags."""
    model = state.settings.model
    if overrides.get("method") == "guard":
        seed = overrides.get("seed")
        return GuardRun(persona=str(folder), base_model=model, seed=seed or 0)  # type: ignore[arg-type]
    ask = TrainRequest(persona=str(folder), overrides=overrides, iters=request.iters, model=model)
    registry = Registry(Path(state.settings.adapters_path()))
    try:
        config = with_init(new_config(ask), registry, _version(start) if start else None, overrides)
    except (PrepareError, ConfigError) as exc:
        raise InvalidRequest(str(exc), param="model") from None
    return NewRun(config=config, label=label)


def _starting_point(
    state: ServerState, model: str
) -> tuple[PersonaEntry | None, Checkpoint | None]:
    """The persona a job trains, and the checkpoint it starts from when `model` names one
    (`juni@run-1:best`: fine-tuning a fine-tuned model, as OpenAI's API does)."""
    persona = state.catalog.get(model)
    if persona is not None or "@" not in model:
        return persona, None
    try:
        ref = parse_model_id(model)
        persona = state.catalog.get(ref.persona)
        registry = Registry(Path(state.settings.adapters_path()))
        start = registry.resolve(ref) if persona is not None else None
    except RegistryError as exc:
        raise ModelNotFoundError(
            f"The model {quote(model)} does not exist: {exc}", param="model"
        ) from None
    if persona is None or start is None:
        raise ModelNotFoundError(
            f"The model {quote(model)} does not exist: name a persona's checkpoint "
            "(persona@run-N:STEP, :best or :latest)",
            param="model",
        )
    return persona, start


def _require_pairs(state: ServerState, train: FileObject, kind: str) -> None:
    """A 400 naming the lines of an uploaded file that are not preference pairs."""
    rows = read_dataset(state.files.content_path(train.id)).rows
    lines = [row.line for row in rows if not isinstance(row.record, PreferenceRecord)]
    if lines:
        shown = ", ".join(str(n) for n in lines[:5]) + (", ..." if len(lines) > 5 else "")
        where = f"{train.filename} line{'s' if len(lines) > 1 else ''} {shown}"
        raise InvalidRequest(
            f"{where}: {kind} trains on preference pairs (input, "
            f"preferred_output, non_preferred_output); {len(lines)} of its {len(rows)} records "
            "are not",
            param="training_file",
            code="invalid_file",
        )


def _label_ok(label: str) -> bool:
    """Whether a suffix can label a run folder (`run-N-<label>` stays a safe name)."""
    return len(label) <= MAX_LABEL and SAFE_NAME.fullmatch(label) is not None


def _version(start: Checkpoint) -> str:
    """The exact checkpoint (`juni@run-1:40`), so a later `best` never changes what a resumed
    job starts from."""
    m = start.manifest
    return f"{m.persona}@{m.run}:{m.step}"


def _has_data(persona: PersonaEntry, pairs: bool) -> bool:
    if pairs:
        return (persona.folder / PREFERENCE).is_file()
    return persona.train_file is not None


def _copy_data(
    state: ServerState, folder: Path, train_id: str, valid_id: str | None, name: str
) -> None:
    write_bytes(folder / name, state.files.content(train_id))
    if valid_id is not None:
        write_bytes(folder / VALID, state.files.content(valid_id))


def _check_new_persona(
    state: ServerState, request: CreateJobRequest, train: FileObject | None
) -> None:
    name = request.suffix
    if not name:
        raise InvalidRequest(
            "fine-tuning the base model needs a suffix: the name of the new persona",
            param="suffix",
        )
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidRequest(
            f"suffix {quote(name)} must be lowercase letters, digits, '-' or '_' (max 63), as it "
            "names the new persona",
            param="suffix",
        )
    if state.catalog.get(name) is not None or (personas_dir() / name).exists():
        raise InvalidRequest(
            f"a persona named {quote(name)} exists already; fine-tune it by naming it as model",
            param="suffix",
        )
    if train is None:
        raise InvalidRequest(
            "fine-tuning the base model needs a training_file", param="training_file"
        )


def _new_persona(
    state: ServerState,
    request: CreateJobRequest,
    train: FileObject | None,
    valid: FileObject | None,
    data: str,
) -> tuple[PersonaCard, Path]:
    """Create the persona a base-model job names: a minimal card and the uploaded data."""
    name, folder = request.suffix or "", personas_dir() / (request.suffix or "")
    assert train is not None
    content = state.files.content(train.id)
    prompt = agreed_system_prompt(content) or f"You are {name}."
    document = tomlkit.document()
    document["name"] = name
    document["system_prompt"] = prompt
    document["base_model"] = state.settings.model
    try:
        with staged_folder(folder) as staging:
            _copy_data(state, staging, train.id, valid.id if valid else None, data)
            write_text(staging / CARD, tomlkit.dumps(document))
            load_card(staging)  # the card must read back before the persona exists
    except (ValueError, CardError, FileExistsError) as exc:  # a lone surrogate, a race
        raise InvalidRequest(
            f"the persona {quote(name)} cannot be created: {exc}", param="suffix"
        ) from None
    card = load_card(folder)
    state.catalog.add(PersonaEntry(name, folder, card))
    return card, folder


def agreed_system_prompt(content: bytes) -> str | None:
    """The system turn every record of a JSONL dataset (chats, or pairs' `input`) starts with,
    if they all agree."""
    prompts: set[str] = set()
    for line in content.decode("utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            check_depth(line)
            record = json.loads(line)
        except ValueError:  # NestingError is one
            return None
        if isinstance(record, dict) and isinstance(record.get("input"), dict):
            record = record["input"]  # a preference pair's conversation so far
        messages = record.get("messages") if isinstance(record, dict) else None
        first = messages[0] if isinstance(messages, list) and messages else None
        if not (isinstance(first, dict) and first.get("role") == "system"):
            return None
        prompts.add(str(first.get("content", "")))
    return prompts.pop() if len(prompts) == 1 and "" not in prompts else None
