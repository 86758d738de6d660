# One image for web, worker and beat (see docker-compose.yml; nginx uses its official image).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SYNTHORG_VAR_DIR=/app/var

WORKDIR /app
COPY requirements/ requirements/
RUN pip install --no-cache-dir -r requirements/base.txt

COPY . .
# collectstatic needs importable settings; these build-time values never reach a container.
RUN SECRET_KEY=build-only-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz \
    python manage.py collectstatic --noinput \
 && useradd --system --home /app app && mkdir -p /app/var && chown -R app /app/var

USER app
EXPOSE 8000
# Settings (bind, workers, timeouts, access log) live in deploy/gunicorn.conf.py; run it behind
# nginx (deploy/nginx.conf), never published directly.
CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py", "synthorg.wsgi"]
