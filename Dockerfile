# leadbot: the same install as the README (pip install -e .), on a slim Python base.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DATABASE_URL=sqlite+aiosqlite:////app/data/leadbot.db

WORKDIR /app
RUN useradd --create-home --uid 10001 leadbot

COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY funnel ./funnel
COPY locales ./locales
RUN pip install -e . && mkdir -p /app/data && chown -R leadbot:leadbot /app/data

USER leadbot
VOLUME ["/app/data"]
EXPOSE 8080
CMD ["python", "-m", "bot"]
