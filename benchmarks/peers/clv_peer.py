"""One fit (or one summary) by a peer library, run inside that library's own environment.

Invoked by ``benchmarks/bench_clv.py`` with the Python of ``benchmarks/.venv-peers/<lib>``;
it must not import loyalist.  Reads its input from an ``.npz`` file, times only the library
call (model compilation included), and prints one JSON object on its last line:
``{"ok": true, "seconds": .., "params": {..}, "maxrss_mb": ..}`` or
``{"ok": false, "error": ".."}``.

Usage: python clv_peer.py LIB TASK DATA.npz
  LIB   lifetimes | pymc
  TASK  bgnbd | paretonbd | gg | summary
"""

from __future__ import annotations

import json
import resource
import sys
import time
import traceback
import warnings
from typing import Any


def _maxrss_mb() -> float:
    """Peak resident memory of this process in MB.

    ``VmHWM`` is the high-water mark of this process's own address space; ``ru_maxrss``
    is not used because Linux carries it over from the parent across fork and exec.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _frame(data: Any) -> Any:
    import pandas as pd

    n = data["x"].shape[0]
    return pd.DataFrame(
        {
            "customer_id": range(n),
            "frequency": data["x"],
            "recency": data["t_x"],
            "T": data["T"],
            "monetary_value": data["m"],
        }
    )


def _lifetimes(task: str, data: Any) -> tuple[float, dict[str, float]]:
    import lifetimes

    if task == "summary":
        import pandas as pd
        from lifetimes.utils import summary_data_from_transaction_data

        tx = pd.DataFrame(
            {
                "customer_id": pd.Series(data["customer"]).map("C{}".format),
                "date": pd.to_datetime(data["day"], unit="D"),
                "amount": data["amount"],
            }
        )
        end = pd.to_datetime(int(data["end_day"]), unit="D")
        started = time.perf_counter()
        out = summary_data_from_transaction_data(
            tx,
            "customer_id",
            "date",
            monetary_value_col="amount",
            observation_period_end=end,
            freq="D",
        )
        seconds = time.perf_counter() - started
        return seconds, {"customers": float(len(out))}
    df = _frame(data)
    started = time.perf_counter()
    if task == "bgnbd":
        m = lifetimes.BetaGeoFitter(penalizer_coef=0.0)
        m.fit(df["frequency"], df["recency"], df["T"])
    elif task == "paretonbd":
        m = lifetimes.ParetoNBDFitter(penalizer_coef=0.0)
        m.fit(df["frequency"], df["recency"], df["T"])
    elif task == "gg":
        rep = df[(df["frequency"] > 0) & (df["monetary_value"] > 0)]
        m = lifetimes.GammaGammaFitter(penalizer_coef=0.0)
        m.fit(rep["frequency"], rep["monetary_value"])
    else:
        raise ValueError(task)
    seconds = time.perf_counter() - started
    params = {str(k): float(v) for k, v in m.params_.items()}
    if task == "gg":
        params["gamma"] = params.pop("v")
    return seconds, params


def _pymc(task: str, data: Any) -> tuple[float, dict[str, float]]:
    from pymc_extras.prior import Prior
    from pymc_marketing import clv

    df = _frame(data)
    flat = Prior("HalfFlat")
    started = time.perf_counter()
    if task == "bgnbd":
        names = ("r", "alpha", "a", "b")
        model: Any = clv.BetaGeoModel(
            data=df[["customer_id", "frequency", "recency", "T"]],
            model_config={n: flat for n in names},
        )
    elif task == "paretonbd":
        names = ("r", "alpha", "s", "beta")
        model = clv.ParetoNBDModel(
            data=df[["customer_id", "frequency", "recency", "T"]],
            model_config={n: flat for n in names},
        )
    elif task == "gg":
        names = ("p", "q", "v")
        rep = df[(df["frequency"] > 0) & (df["monetary_value"] > 0)]
        model = clv.GammaGammaModel(
            data=rep[["customer_id", "frequency", "monetary_value"]],
            model_config={n: flat for n in names},
        )
    else:
        raise ValueError(task)
    model.fit(method="map", progressbar=False)
    seconds = time.perf_counter() - started
    post = model.idata.posterior
    params = {n: float(post[n].values.ravel()[0]) for n in names}
    if task == "gg":
        params["gamma"] = params.pop("v")
    return seconds, params


def main() -> int:
    lib, task, path = sys.argv[1], sys.argv[2], sys.argv[3]
    warnings.simplefilter("ignore")
    try:
        import numpy as np

        data = dict(np.load(path))
        run = _lifetimes if lib == "lifetimes" else _pymc
        seconds, params = run(task, data)
        out: dict[str, Any] = {
            "ok": True,
            "seconds": seconds,
            "params": params,
            "maxrss_mb": _maxrss_mb(),
        }
    except Exception as exc:  # a peer's failure is reported, not raised
        tail = traceback.format_exc().strip().splitlines()[-1]
        out = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300], "where": tail[:200]}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
