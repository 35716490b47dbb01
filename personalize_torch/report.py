"""Human-readable summaries of training results, shared by train.py and the benchmarks."""

from __future__ import annotations


def format_metrics(metrics: dict[str, float], names: list[str] | None = None) -> str:
    names = names or list(metrics)
    width = max(len(n) for n in names)
    return "\n".join(f"  {n:<{width}}  {metrics[n]:.4f}" for n in names if n in metrics)


def format_training_report(result: dict) -> str:
    data = result["data"]
    lines = [f"Trained on {data['name']}: {data['n_interactions']} interactions, {data['n_users']} users, "
             f"{data['n_items']} items (split: {data['split']})"]
    lines.append("Personalize metrics:")
    lines.append(format_metrics(result["personalize_metrics"]))
    final_stage = "test" if "test" in result["metrics"] else "val"
    lines.append(f"Full-ranking metrics ({final_stage}):")
    lines.append(format_metrics(result["metrics"][final_stage], ["hit_rate_at_10", "ndcg_at_10", "mrr_at_10", "mrr",
                                                                 "recall_at_1_percent", "random_recall_at_1_percent"]))
    if result["solution"] is None:   # one of several training processes: rank 0 writes
        lines.append("Solution version saved by the process of rank 0")
    else:
        lines.append(f"Solution version saved to {result['solution']}")
    return "\n".join(lines)
