"""Two Hydra sweepers: hyperparameter search over current Optuna, and AutoML across recipes.

    python train.py -m hparams_search=hrnn [data=ml100k] [hydra.sweeper.n_trials=20]
    python train.py -m hparams_search=personalize solution_config=hpo.json   # a Personalize hpoConfig
    python train.py -m automl=default [hydra.sweeper.recipes=[sims,popularity_count]]
    python train.py -m automl=default hydra.sweeper.hpo_trials=10   # AutoML, then tune the winner

Why not hydra-optuna-sweeper (checked 2026-11 with its latest release, 1.3.0): it pins `optuna<3`, so it
installs Optuna 2.10 (2021) with cliff/cmd2/scipy beside our stack, and would downgrade any Optuna >= 3 a
user already has. It does run with our pins, but it only reports the best parameters: saving the best
trial's solution version, writing every trial's score and reading Personalize's hpoConfig would have had
to live somewhere else anyway. This sweeper is the same idea (ask Optuna for a batch of `n_jobs` trials,
launch them through Hydra's launcher, tell Optuna their objective) over Optuna >= 3.4's ask/tell API, in
~250 lines, and it accepts the same search-space syntax as that plugin in `hydra.sweeper.params`:

    recipe.hidden_dimension: int(interval(32, 256))         # integers, both ends included
    recipe.dropout: interval(0.0, 0.5)                       # floats (Hydra reads interval ends as floats)
    recipe.learning_rate: tag(log, interval(1e-4, 1e-2))     # log scale
    recipe.recency_mask: choice(true, false)
    recipe.bptt: range(2, 33, step=2)                        # Hydra's range: stop excluded
    recipe.weight_decay: {type: float, low: 0.0, high: 0.1}  # or a spec dict (personalize_torch.hpo)

Sweeps given on the command line (`recipe.dropout='interval(0.1,0.3)'`) join or replace these; other
overrides are passed to every trial unchanged. Each trial is a normal `train.py` run (its own
`<sweep dir>/<n>/` with a solution version); trials run one after another with Hydra's basic launcher
(`n_jobs` is how many Optuna proposes at once, which a parallel launcher such as hydra-joblib-launcher
runs together). At the end `<sweep dir>/best/solution` is a copy of the best trial's solution version,
its solution.json with Personalize's `tunedHPOParams`, and `<sweep dir>/best/hpo.json` lists every trial
(parameters, score, state, error). Plugin modules are imported whenever Hydra starts, so torch and Optuna
are imported only inside `sweep`.
"""


import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

# How many trials in a row may fail before the sweep stops (the cause is then rarely the parameters).
MAX_FAILURES_IN_A_ROW = 3


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.personalize_sweepers.sweepers.PersonalizeOptunaSweeper"
    objective: str = "val/ndcg_at_10"    # <stage>/<metric> or a Personalize metric name (validation)
    direction: str = "maximize"
    n_trials: int = 10
    n_jobs: int = 1                      # trials proposed (and launched) together
    timeout_s: Optional[float] = None    # start no new batch after this many seconds
    sampler: str = "tpe"                 # tpe | random
    seed: Optional[int] = 42
    params: Dict[str, Any] = field(default_factory=dict)


@dataclass
class AutoMLSweeperConf:
    _target_: str = "hydra_plugins.personalize_sweepers.sweepers.PersonalizeAutoMLSweeper"
    recipes: Optional[List[str]] = None  # null: personalize_torch.automl.DEFAULT_RECIPES
    objective: str = "val/ndcg_at_10"
    direction: str = "maximize"
    time_budget_s: Optional[float] = None  # start no new candidate (or tuning trial) after this many seconds
    # performHPO after performAutoML: this many trials tune the winning recipe (0 = none; a solution_config
    # with performHPO sets it from hpoConfig's maxNumberOfTrainingJobs, else DEFAULT_HPO_TRIALS)
    hpo_trials: int = 0
    hpo_sampler: str = "tpe"
    seed: Optional[int] = 42


ConfigStore.instance().store(group="hydra/sweeper", name="personalize_optuna", node=OptunaSweeperConf,
                             provider="personalize_torch")
ConfigStore.instance().store(group="hydra/sweeper", name="personalize_automl", node=AutoMLSweeperConf,
                             provider="personalize_torch")


def spec_from_override(override: Override) -> dict:
    """A Hydra sweep (`interval`, `tag(log, interval)`, `choice`, `range`) as a search-range spec."""
    from hydra.core.override_parser.types import IntervalSweep, RangeSweep

    value = override.value()
    if override.is_interval_sweep():
        assert isinstance(value, IntervalSweep)
        is_int = isinstance(value.start, int) and isinstance(value.end, int)
        return {"type": "int" if is_int else "float", "low": value.start, "high": value.end,
                "log": "log" in value.tags}
    if override.is_range_sweep():
        assert isinstance(value, RangeSweep)
        values = list(override.sweep_iterator())
        if all(isinstance(v, int) for v in values) and len(values) > 1 and not value.shuffle:
            return {"type": "int", "low": values[0], "high": values[-1], "step": values[1] - values[0]}
        return {"type": "categorical", "choices": values}
    if override.is_choice_sweep():
        return {"type": "categorical", "choices": list(override.sweep_iterator())}
    raise ValueError(f"{override.input_line}: not a sweep")


def split_arguments(arguments: Sequence[str]) -> tuple[dict[str, dict], list[str]]:
    """Command-line overrides -> ({key: spec} for sweeps, [fixed overrides as typed])."""
    parsed = OverridesParser.create().parse_overrides(list(arguments))
    sweeps, fixed = {}, []
    for text, override in zip(arguments, parsed):
        if override.is_sweep_override():
            sweeps[override.get_key_element()] = spec_from_override(override)
        else:
            fixed.append(text)
    return sweeps, fixed


def params_to_specs(params) -> dict[str, dict]:
    """`hydra.sweeper.params` (sweep strings or spec dicts) -> {key: spec}."""
    from personalize_torch.errors import InputError

    specs = {}
    parser = OverridesParser.create()
    for key, value in (params or {}).items():
        if isinstance(value, (dict, DictConfig)):
            specs[str(key)] = OmegaConf.to_container(value) if isinstance(value, DictConfig) else dict(value)
            continue
        override = parser.parse_override(f"{key}={value}")
        if not override.is_sweep_override():
            raise InputError(f"expected a sweep (interval(...), choice(...), range(...)) or a spec dict, "
                             f"got {value!r}", column=f"hydra.sweeper.params.{key}")
        specs[str(key)] = spec_from_override(override)
    return specs


def _job_outcome(ret: JobReturn) -> tuple[Any, BaseException | None]:
    if ret.status == JobStatus.COMPLETED:
        return ret.return_value, None
    error = ret._return_value
    return None, error if isinstance(error, BaseException) else RuntimeError(str(error))


def _job_dir(ret: JobReturn) -> str | None:
    try:
        return str(ret.hydra_cfg.hydra.runtime.output_dir)
    except Exception:  # a launcher that does not fill hydra_cfg
        return None


def _describe(error: BaseException) -> str:
    describe = getattr(error, "describe", None)
    return describe() if callable(describe) else f"{type(error).__name__}: {error}"


def _exit_on_input_error(sweep):
    """As train.py does for one training: bad input is one line on stderr and exit status 2."""
    import functools

    @functools.wraps(sweep)
    def wrapper(self, arguments):
        from personalize_torch.errors import InputError

        try:
            return sweep(self, arguments)
        except InputError as err:
            print(f"error: {err.describe()}", file=sys.stderr)
            sys.exit(2)

    return wrapper


def _import_optuna():
    """Optuna, which the `hpo` extra installs; without it, one line saying so on stderr and exit status 2."""
    try:
        import optuna
    except ImportError:
        print('error: hyperparameter search needs Optuna: pip install "personalize-torch[hpo]" '
              '(in a clone of the repository: pip install -e ".[hpo]")', file=sys.stderr)
        sys.exit(2)
    return optuna


class _Base(Sweeper):
    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(config=config, hydra_context=hydra_context,
                                                               task_function=task_function)
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        self.job_idx = 0

    def _launch(self, batch: list[tuple[str, ...]]) -> Sequence[JobReturn]:
        self.validate_batch_is_legal(batch)
        returns = self.launcher.launch(batch, initial_job_idx=self.job_idx)
        self.job_idx += len(returns)
        return returns

    def _solution_config(self) -> dict | None:
        from personalize_torch.solution_config import read_solution_config

        path = self.config.get("solution_config")
        return read_solution_config(path) if path else None

    def _run_study(self, plan: dict, sampler: str, seed: Optional[int], timeout_s: Optional[float],
                   report: dict) -> list[dict]:
        """Run `plan` (space, fixed overrides, objective, direction, n_trials, n_jobs) as an Optuna study, each
        trial a training launched through Hydra; `report["trials"]` (the list returned) gets one record per
        trial and `report` is rewritten to <sweep dir>/best/hpo.json after each batch."""
        optuna = _import_optuna()
        from optuna.trial import TrialState

        from personalize_torch.errors import InputError
        from personalize_torch.hpo import HPO_JSON, distribution, objective_value, override_value, write_json

        dists = {key: distribution(key, spec) for key, spec in plan["space"].items()}
        samplers = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
        if sampler not in samplers:
            raise InputError(f"expected one of {', '.join(samplers)}, got {sampler!r}", column="hydra.sweeper.sampler")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction=plan["direction"], sampler=samplers[sampler](seed=seed))
        log.info("Optuna study: %d trials (%d at a time), %s %s over %s", plan["n_trials"], plan["n_jobs"],
                 plan["direction"], plan["objective"], ", ".join(dists))
        trials: list[dict] = report["trials"]
        start = time.monotonic()
        while len(trials) < plan["n_trials"]:
            if timeout_s is not None and time.monotonic() - start > timeout_s:
                log.info("time limit of %s s reached after %d trials", timeout_s, len(trials))
                break
            asked = [study.ask(dists) for _ in range(min(plan["n_jobs"], plan["n_trials"] - len(trials)))]
            batch = [tuple(plan["fixed"]) + tuple(f"{k}={override_value(t.params[k])}" for k in dists)
                     for t in asked]
            for trial, ret in zip(asked, self._launch(batch)):
                record = {"number": trial.number, "params": dict(trial.params), "job_dir": _job_dir(ret)}
                result, error = _job_outcome(ret)
                if error is None:
                    try:
                        value = objective_value(result, plan["objective"])
                    except InputError as err:
                        error = err
                if error is None:
                    study.tell(trial, value)
                    record.update(state="COMPLETE", value=value, solution=result["solution"],
                                  metrics=result["metrics"])
                    log.info("trial %d: %s = %.5f", trial.number, plan["objective"], value)
                else:
                    study.tell(trial, state=TrialState.FAIL)
                    record.update(state="FAIL", value=None, error=_describe(error))
                    log.warning("trial %d failed: %s", trial.number, record["error"])
                trials.append(record)
            write_json(self.sweep_dir / "best" / HPO_JSON, report)
            if len(trials) >= MAX_FAILURES_IN_A_ROW and all(t["state"] == "FAIL" for t in trials):
                raise InputError(f"the first {len(trials)} trials failed; the last one: {trials[-1]['error']}",
                                 column="hydra.sweeper")
        return trials


class PersonalizeOptunaSweeper(_Base):
    def __init__(self, objective: str, direction: str, n_trials: int, n_jobs: int, timeout_s: Optional[float],
                 sampler: str, seed: Optional[int], params: Optional[DictConfig]) -> None:
        self.objective, self.direction = objective, direction
        self.n_trials, self.n_jobs, self.timeout_s = n_trials, n_jobs, timeout_s
        self.sampler, self.seed = sampler, seed
        self.params = params

    def search(self, arguments: Sequence[str]) -> dict:
        """What the sweep will do: {"space": {key: spec}, "fixed": [...], "objective", "direction",
        "n_trials", "n_jobs"}; a Personalize hpoConfig (solution_config=...) replaces the configured space."""
        from hydra.utils import get_class

        from personalize_torch.errors import InputError
        from personalize_torch.hpo import check_direction, distribution, metric_key
        from personalize_torch.recipes import RECIPES

        space = params_to_specs(self.params)
        sweeps, fixed = split_arguments(arguments)
        space.update(sweeps)
        plan = {"space": space, "fixed": fixed, "objective": self.objective, "direction": self.direction,
                "n_trials": int(self.n_trials), "n_jobs": int(self.n_jobs)}
        sc = self._solution_config()
        if sc is not None and sc["hpo"] is not None:
            hpo = sc["hpo"]
            recipe = sc["recipe"] or get_class(self.config.recipe._target_).recipe_name
            accepted = RECIPES[recipe].hyperparameter_defaults() if recipe in RECIPES else {}
            for name in hpo["params"]:
                column = f"hpoConfig.algorithmHyperParameterRanges.{name}"
                if accepted and name not in accepted:
                    raise InputError(f"{recipe} has no hyperparameter {name}", column=column)
                if name in sc["hyperparameters"]:
                    raise InputError(f"{name} is both fixed (algorithmHyperParameters) and tuned (hpoConfig)",
                                     column=column)
            if space:
                log.info("hpoConfig in %s replaces the search space of hydra.sweeper.params (%s)",
                         self.config.solution_config, ", ".join(space))
            # `++`: a Personalize name need not be in the recipe's yaml (the recipe class checks it).
            plan["space"] = {f"++recipe.{name}": spec for name, spec in hpo["params"].items()}
            if sc["recipe"] and not any(f.split("=", 1)[0].lstrip("+") == "recipe" for f in fixed):
                plan["fixed"] = [*fixed, f"recipe={sc['recipe']}"]
            plan["objective"] = hpo["objective"] or plan["objective"]
            plan["direction"] = hpo["direction"]
            plan["n_trials"] = hpo["n_trials"] or plan["n_trials"]
            plan["n_jobs"] = hpo["n_jobs"] or plan["n_jobs"]
        if not plan["space"]:
            raise InputError("nothing to search: give hydra.sweeper.params, a sweep on the command line or "
                             "a solution_config with hpoConfig", column="hydra.sweeper.params")
        for key, spec in plan["space"].items():
            distribution(key, spec)
        metric_key(plan["objective"])
        plan["direction"] = check_direction(plan["direction"])
        for name in ("n_trials", "n_jobs"):
            if plan[name] < 1:
                raise InputError(f"must be at least 1, got {plan[name]}", column=f"hydra.sweeper.{name}")
        return plan

    @_exit_on_input_error
    def sweep(self, arguments: List[str]) -> dict:
        _import_optuna()
        from personalize_torch.errors import InputError
        from personalize_torch.hpo import HPO_JSON, best_trial, copy_solution, tuned_hpo_params, write_json

        plan = self.search(arguments)
        report = {"objective": plan["objective"], "direction": plan["direction"], "sampler": self.sampler,
                  "seed": self.seed, "search_space": plan["space"], "fixed_overrides": plan["fixed"], "trials": []}
        trials = self._run_study(plan, self.sampler, self.seed, self.timeout_s, report)
        best = best_trial(trials, plan["direction"])
        if best is None:
            raise InputError("no trial completed: " + "; ".join(t["error"] for t in trials), column="hydra.sweeper")
        solution = copy_solution(best["solution"], self.sweep_dir / "best" / "solution", {
            "tunedHPOParams": tuned_hpo_params(best["params"]),
            "hpoResult": {"objective": plan["objective"], "direction": plan["direction"],
                          "bestTrial": best["number"], "value": best["value"], "trials": len(trials)}})
        report.update(best_trial=best["number"], best_value=best["value"], best_params=best["params"],
                      best_solution=str(solution))
        write_json(self.sweep_dir / "best" / HPO_JSON, report)
        log.info("best trial %d: %s = %.5f with %s; solution version: %s", best["number"], plan["objective"],
                 best["value"], best["params"], solution)
        return report


class PersonalizeAutoMLSweeper(_Base):
    def __init__(self, recipes: Optional[List[str]], objective: str, direction: str,
                 time_budget_s: Optional[float], hpo_trials: int = 0, hpo_sampler: str = "tpe",
                 seed: Optional[int] = 42) -> None:
        self.recipes = list(recipes) if recipes is not None else None
        self.objective, self.direction, self.time_budget_s = objective, direction, time_budget_s
        self.hpo_trials, self.hpo_sampler, self.seed = int(hpo_trials), hpo_sampler, seed

    def plan(self, arguments: Sequence[str]) -> dict:
        from personalize_torch.automl import DEFAULT_HPO_TRIALS, DEFAULT_RECIPES, check_recipes
        from personalize_torch.errors import InputError
        from personalize_torch.hpo import check_direction, metric_key

        sweeps, fixed = split_arguments(arguments)
        if sweeps:
            raise InputError("AutoML trains each candidate recipe once; run sweeps with hparams_search=<recipe>",
                             column=next(iter(sweeps)))
        if any(f.split("=", 1)[0].lstrip("+~") == "recipe" for f in fixed):
            raise InputError("AutoML picks the recipe: give candidates as hydra.sweeper.recipes=[...], not recipe=",
                             column="recipe")
        recipes, objective = self.recipes or list(DEFAULT_RECIPES), self.objective
        hpo_trials, hpo_ranges = self.hpo_trials, None
        sc = self._solution_config()
        if sc is not None:
            if sc["recipe"] is not None:
                raise InputError("performAutoML picks the recipe: remove recipeArn", column="recipeArn")
            if sc["automl"] is not None:
                recipes = sc["automl"]["recipes"] or recipes
                objective = sc["automl"]["objective"] or objective
            if sc["perform_hpo"]:
                hpo = sc["hpo"] or {}
                hpo_trials = hpo.get("n_trials") or hpo_trials or DEFAULT_HPO_TRIALS
                hpo_ranges = hpo.get("params") or None
        if hpo_trials < 0:
            raise InputError(f"must be 0 or more, got {hpo_trials}", column="hydra.sweeper.hpo_trials")
        metric_key(objective)
        return {"recipes": check_recipes(recipes), "fixed": fixed, "objective": objective,
                "direction": check_direction(self.direction), "hpo_trials": hpo_trials, "hpo_ranges": hpo_ranges}

    def _tuning_plan(self, recipe: str, plan: dict) -> tuple[dict | None, str | None]:
        """The search that tunes the winning `recipe` (its ranges: the solution config's hpoConfig, else
        configs/hparams_search/<recipe>.yaml), or (None, why there is none)."""
        from personalize_torch.automl import tuning_ranges_file
        from personalize_torch.recipes import RECIPES

        if plan["hpo_ranges"]:
            accepted = RECIPES[recipe].hyperparameter_defaults()
            space = {f"++recipe.{name}": spec for name, spec in plan["hpo_ranges"].items() if name in accepted}
            ignored = sorted(set(plan["hpo_ranges"]) - {k.removeprefix("++recipe.") for k in space})
            if ignored:
                log.info("AutoML + HPO: %s has no hyperparameter %s; those ranges are left out", recipe,
                         ", ".join(ignored))
        else:
            ranges = tuning_ranges_file(recipe)
            if ranges is None:
                return None, f"{recipe} has no hyperparameters to tune"
            params = OmegaConf.load(ranges).hydra.sweeper.params
            space = {f"++{key}": spec for key, spec in params_to_specs(params).items()}
        if not space:
            return None, f"none of the hpoConfig ranges are hyperparameters of {recipe}"
        return {"space": space, "fixed": [*plan["fixed"], f"recipe={recipe}"], "objective": plan["objective"],
                "direction": plan["direction"], "n_trials": plan["hpo_trials"], "n_jobs": 1}, None

    @_exit_on_input_error
    def sweep(self, arguments: List[str]) -> dict:
        from personalize_torch.automl import automl_result, data_rule_failures
        from personalize_torch.errors import InputError
        from personalize_torch.hpo import AUTOML_JSON, copy_solution, objective_value, tuned_hpo_params, write_json
        from personalize_torch.training import load_data

        plan = self.plan(arguments)
        failures = data_rule_failures(load_data(self.config.data), plan["recipes"])
        candidates: list[dict] = []
        start = time.monotonic()
        for recipe in plan["recipes"]:
            record = {"recipe": recipe}
            candidates.append(record)
            if recipe in failures:
                record.update(state="SKIPPED", value=None, reason=failures[recipe])
                log.info("AutoML: %s skipped: %s", recipe, failures[recipe])
                continue
            if self.time_budget_s is not None and time.monotonic() - start > self.time_budget_s:
                record.update(state="SKIPPED", value=None, reason=f"time_budget_s={self.time_budget_s} spent")
                continue
            (ret,) = self._launch([(*plan["fixed"], f"recipe={recipe}")])
            record["job_dir"] = _job_dir(ret)
            result, error = _job_outcome(ret)
            if error is None:
                try:
                    record.update(state="COMPLETE", value=objective_value(result, plan["objective"]),
                                  solution=result["solution"], metrics=result["metrics"])
                    log.info("AutoML: %s %s = %.5f", recipe, plan["objective"], record["value"])
                    continue
                except InputError as err:
                    error = err
            # A recipe's own data check (HRNN-Coldstart: no cold items) fails before training: skipped.
            state = "SKIPPED" if isinstance(error, InputError) else "FAILED"
            record.update(state=state, value=None, reason=_describe(error))
            log.warning("AutoML: %s %s: %s", recipe, state.lower(), record["reason"])
        result = automl_result(candidates, plan["objective"], plan["direction"])
        best = next(c for c in candidates if c["recipe"] == result["bestRecipe"])
        log.info("AutoML: best recipe %s (%s = %.5f)", best["recipe"], plan["objective"], best["value"])
        extra, tuning = {"autoMLResult": result}, None
        if plan["hpo_trials"]:
            tuning = self._tune(best, plan, start)
            extra["hpoResult"] = {**{key: tuning[key] for key in ("objective", "direction", "bestTrial", "value",
                                                                   "defaultsValue")},
                                  "trials": len(tuning["trials"])}
            if tuning["bestTrial"] is not None:
                winner = next(t for t in tuning["trials"] if t["number"] == tuning["bestTrial"])
                best = {**best, "solution": winner["solution"], "value": winner["value"]}
                extra["tunedHPOParams"] = tuned_hpo_params(winner["params"])
        solution = copy_solution(best["solution"], self.sweep_dir / "best" / "solution", extra)
        write_json(self.sweep_dir / "best" / AUTOML_JSON, {**result, "best_solution": str(solution),
                                                           "details": candidates, "hpo": tuning})
        log.info("AutoML: %s = %.5f; solution version: %s", plan["objective"], best["value"], solution)
        return result

    def _tune(self, best: dict, plan: dict, start: float) -> dict:
        """performHPO after performAutoML: an Optuna search over the winning recipe's ranges. The winner's
        training with its default hyperparameters competes too: `bestTrial` is None when no tuned trial beat it."""
        from personalize_torch.hpo import best_trial

        tuning = {"recipe": best["recipe"], "objective": plan["objective"], "direction": plan["direction"],
                  "defaultsValue": best["value"], "trials": [], "bestTrial": None, "value": best["value"]}
        search, why_not = self._tuning_plan(best["recipe"], plan)
        remaining = None if self.time_budget_s is None else self.time_budget_s - (time.monotonic() - start)
        if search is None or (remaining is not None and remaining <= 0):
            tuning["skipped"] = why_not or f"time_budget_s={self.time_budget_s} spent"
            log.info("AutoML + HPO: no tuning: %s", tuning["skipped"])
            return tuning
        tuning.update(search_space=search["space"], sampler=self.hpo_sampler, seed=self.seed)
        self._run_study(search, self.hpo_sampler, self.seed, remaining, tuning)
        tuned = best_trial(tuning["trials"], plan["direction"])
        sign = 1.0 if plan["direction"] == "maximize" else -1.0
        if tuned is not None and sign * tuned["value"] > sign * best["value"]:
            tuning.update(bestTrial=tuned["number"], value=tuned["value"])
        log.info("AutoML + HPO: %d trials of %s; %s", len(tuning["trials"]), best["recipe"],
                 f"trial {tuning['bestTrial']} is best" if tuning["bestTrial"] is not None
                 else "no trial beat the default hyperparameters")
        return tuning
