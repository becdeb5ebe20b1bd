# clusterfeeds daemon image: `docker build -t clusterfeeds .` then
#   docker run -p 8080:8080 -v clusterfeeds:/var/lib/clusterfeeds clusterfeeds
# Mount your own sources.toml at /etc/clusterfeeds/sources.toml to replace the shipped one.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY aggregator ./aggregator
RUN python -m venv /opt/clusterfeeds \
 && /opt/clusterfeeds/bin/pip install --no-cache-dir --disable-pip-version-check -c constraints.txt .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/clusterfeeds --create-home clusterfeeds
COPY --from=build /opt/clusterfeeds /opt/clusterfeeds
COPY sources.toml /etc/clusterfeeds/sources.toml
ENV PATH=/opt/clusterfeeds/bin:$PATH PYTHONUNBUFFERED=1
USER clusterfeeds
VOLUME ["/var/lib/clusterfeeds"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"
ENTRYPOINT ["aggregator", "--config", "/etc/clusterfeeds/sources.toml", \
            "--data-dir", "/var/lib/clusterfeeds/data", "--feeds-dir", "/var/lib/clusterfeeds/feeds"]
CMD ["run", "--host", "0.0.0.0", "--port", "8080", "--log-format", "json"]
