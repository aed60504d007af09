"""The tutorial's four claims (parameters, overfitting, localisation, translation), measured over seeds.

    registry   the claims themselves: key -> Claim(key, number, title, method), the one home of titles
    measures   one seed's numbers from trained models and saved metrics; the unseen-position data
    scoring    one run's measures from its folder, the same for a claims job's seed and any pooled run
    summary    per-run numbers -> mean and spread per back-end (and the verdicts, from verdicts)
    verdicts   one computed sentence per claim, comparing the pooling back-end with the dense one
    run        run_claims: train, score and summarise every seed, save claims.json
    groups     a runs folder's finished runs grouped by the settings that must match (only the seed differs)
    measured   a run's measures kept in its folder (claims_measures.json): measure_run, read_measures
    stats      paired differences between back-ends with a 95% t-interval, and the verdict in words
    pool       pooled_claims: one group's runs as one claims table (read-only, or measuring the missing)
    pool_table a pooled result as rows and as text
    saved      the saved results: listed and read back, each claims.json checked before it is shown
    charts     Plotly figures and CSV tables per claim

Drawing stays apart from measuring: import figures and tables from gapdemo.claims.charts, which loads
pandas and Plotly that the command line never needs.
"""

from gapdemo.claims.over_seeds import (
    DEFAULT_SEEDS,
    MAX_SEEDS,
    ClaimsFailed,
    ClaimsStopped,
    check_arguments,
    run_claims,
)
from gapdemo.claims.registry import CLAIMS, Claim, check_claim
from gapdemo.claims.saved import claims_file_problem, latest_claims, list_claims

__all__ = [
    "CLAIMS", "DEFAULT_SEEDS", "MAX_SEEDS", "Claim", "ClaimsFailed", "ClaimsStopped",
    "check_arguments", "check_claim", "claims_file_problem", "latest_claims", "list_claims", "run_claims",
]
