# One image for every groupwise service: the driver (`groupwise`), the Ray head and its GPU
# workers (`ray`), and optuna-dashboard. Build: docker compose build (see docker-compose.yml).
FROM python:3.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

WORKDIR /app

# torch first, on its own layer: PyPI's Linux wheel bundles the CUDA libraries, so a GPU
# worker needs only the NVIDIA container toolkit on its host. TORCH_SPEC pins another build,
# e.g. --build-arg TORCH_SPEC="torch==2.13.0" or a CPU-only index through PIP_INDEX_URL.
ARG TORCH_SPEC="torch>=2.9"
RUN pip install "${TORCH_SPEC}"

# groupwise and its dependencies (ray, optuna, optuna-dashboard, psycopg, ...), with the
# optional optimizers (schedule-free AdamW, Lion, SOAP, Prodigy) that studies may name.
COPY pyproject.toml README.md ./
COPY docker/constraints.txt ./constraints.txt
COPY src ./src
RUN pip install -c constraints.txt ".[optimizers]"

# The shipped studies and search spaces, so `groupwise launch studies/...` works as is.
COPY studies ./studies
COPY search_spaces ./search_spaces
# The driver's entrypoint: joins the Ray cluster as a node, then runs groupwise; and every
# service's: refuses secrets still at their .env.example placeholders.
COPY --chmod=755 docker/groupwise-driver /usr/local/bin/groupwise-driver
COPY --chmod=755 docker/groupwise-entrypoint /usr/local/bin/groupwise-entrypoint

RUN useradd --create-home --uid 1000 groupwise && chown -R groupwise /app
USER groupwise

ENTRYPOINT ["groupwise-entrypoint"]
CMD ["groupwise", "--help"]
