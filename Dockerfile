# The one image every pipeline component runs in. Built from this repository
# (`make image` runs Cloud Build); dependencies come from constraints.txt, so
# the image and a developer's machine resolve the same versions. Components
# install nothing at run time.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/gemini-sft
COPY constraints.txt pyproject.toml README.md ./
COPY src ./src
COPY components ./components
COPY pipelines ./pipelines
RUN pip install -c constraints.txt . \
    && python -c "import gemini_sft.pipelines.gemini_sft_pipeline, kfp, google.genai, rouge_score" \
    && gemini-sft --version

ENTRYPOINT []
