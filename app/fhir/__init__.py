"""The FHIR R4 face of the service: mapping functions between FHIR JSON and the schemas and
views of ``/v1``. No rule lives here: every create, transition, read and search goes through
the services the ``/v1`` routes call."""
