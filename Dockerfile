# syntax=docker/dockerfile:1
# Build: docker build -t referral-service .
# Migrate (one-shot, before the service starts): docker run --rm --env-file prod.env referral-service referral-service migrate
# Serve: docker run --env-file prod.env -p 8000:8000 referral-service

FROM python:3.11-slim AS build
WORKDIR /src
# Dependencies first, in their own cached layer: they change less often than the code.
COPY pyproject.toml README.md ./
RUN python -m pip install --no-cache-dir "hatchling==1.33.0" \
 && python -c "import tomllib; print(chr(10).join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))" > /tmp/requirements.txt
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels -r /tmp/requirements.txt
COPY app ./app
COPY migrations ./migrations
RUN python -m pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    REFERRAL_HOST=0.0.0.0 \
    REFERRAL_PORT=8000
RUN groupadd --system --gid 10001 referral \
 && useradd --system --uid 10001 --gid referral --home-dir /srv --shell /usr/sbin/nologin referral
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir --no-index --find-links=/wheels "referral-service==0.1.0" \
 && rm -rf /wheels \
 && python -c "import zoneinfo; zoneinfo.ZoneInfo('Asia/Shanghai')"
WORKDIR /srv
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os,urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/livez' % os.environ.get('REFERRAL_PORT','8000'), timeout=2).status == 200 else 1)"]
STOPSIGNAL SIGTERM
CMD ["referral-service", "serve"]
