"""Evaluation of retrievers on LAReQA (monolingual, cross-lingual and multilingual settings) and ir_datasets.

    from pyterrier_hybrid.evaluation import evaluate_lareqa
    result = evaluate_lareqa(factory, "xquad-r", langs=["de", "en"], system="bm25")
    print(result.to_markdown())          # Table-1 layout: mono / cross / multi mAP, R@k and rank distance
    result.save("results/bm25")          # CSVs, summary Markdown/JSON, mAP heatmap PNG

``factory(candidates) -> pt.Transformer`` builds a retriever ranking ALL the given candidates; a retriever that
also offers ``docnos`` and ``score_matrix(topics)`` (:class:`ScoreMatrixRetriever`) is scored without building
results frames. Names load lazily (the command line builds its parser without matplotlib or torch). See
:mod:`pyterrier_hybrid.evaluation.runner`, :mod:`pyterrier_hybrid.evaluation.protocol` and
:mod:`pyterrier_hybrid.evaluation.measures`.
"""
from .._lazy import lazy_exports

_EXPORTS = {
    "AP": ".measures",
    "RANK_DISTANCE": ".measures",
    "IncompleteRankingError": ".measures",
    "MeasureMismatchError": ".measures",
    "SettingRanking": ".measures",
    "average_precision": ".measures",
    "exact_rank_measures": ".measures",
    "rank_distance": ".measures",
    "plot_map_heatmap": ".plots",
    "plot_rank_distance_bars": ".plots",
    "plot_setting_bars": ".plots",
    "EvaluationResult": ".report",
    "comparison_table": ".report",
    "markdown_table": ".report",
    "results_markdown": ".report",
    "SCORE_MATRIX_METHOD": ".protocol",
    "ExactRanker": ".runner",
    "IrdsEvaluationConfig": ".irds_runner",
    "LAReQAEvaluationConfig": ".runner",
    "ScoreMatrixRetriever": ".protocol",
    "evaluate_irds": ".irds_runner",
    "evaluate_lareqa": ".runner",
    "has_score_matrix": ".protocol",
    "EvaluationSetting": ".settings",
    "group_by_candidates": ".settings",
    "lareqa_settings": ".settings",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
