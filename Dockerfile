# syntax=docker/dockerfile:1
# Build: docker build -t referral-service:0.1.0 .
#        (any Debian-based image with python3 >= 3.11 and python3-venv works as the base:
#         --build-arg BASE_IMAGE=localhost/referral-base:bookworm; with PIP_NO_INDEX=1 the build
#         takes every wheel from wheelhouse/ and needs no package index)
# Migrate (one-shot, before the service starts): docker run --rm --env-file prod.env referral-service:0.1.0 referral-service migrate
# Serve: docker run --env-file prod.env -p 8000:8000 referral-service:0.1.0
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ARG PIP_NO_INDEX=0
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INDEX=${PIP_NO_INDEX}
WORKDIR /src
RUN python3 -m venv /opt/build
# Dependencies first, in their own cached layer: they change less often than the code.
COPY wheelhouse/ /wheelhouse/
COPY pyproject.toml README.md ./
RUN /opt/build/bin/python -m pip install --no-cache-dir --find-links=/wheelhouse "hatchling==1.33.0" \
 && /opt/build/bin/python -c "import tomllib; print(chr(10).join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))" > /tmp/requirements.txt
RUN /opt/build/bin/python -m pip wheel --no-cache-dir --find-links=/wheelhouse --wheel-dir /wheels -r /tmp/requirements.txt
COPY app ./app
COPY migrations ./migrations
RUN /opt/build/bin/python -m pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    REFERRAL_HOST=0.0.0.0 \
    REFERRAL_PORT=8000
RUN groupadd --system --gid 10001 referral \
 && useradd --system --uid 10001 --gid referral --home-dir /srv --shell /usr/sbin/nologin referral
COPY --from=build /wheels /wheels
# the time-zone database comes with the tzdata wheel, whatever the base image carries
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/python -m pip install --no-cache-dir --no-index --find-links=/wheels "referral-service==0.1.0" \
 && rm -rf /wheels \
 && /opt/venv/bin/python -c "import zoneinfo; zoneinfo.ZoneInfo('Asia/Shanghai')"
WORKDIR /srv
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python3", "-c", "import os,urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/livez' % os.environ.get('REFERRAL_PORT','8000'), timeout=2).status == 200 else 1)"]
STOPSIGNAL SIGTERM
CMD ["referral-service", "serve"]
