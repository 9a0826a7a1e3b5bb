"""The base model for every external shape: camelCase on the wire, field docstrings as descriptions."""

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    """A pydantic model that reads and writes camelCase and refuses unknown fields."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        use_enum_values=False,
    )

    def wire(self) -> dict:
        """The JSON form as the API and the plan file carry it: camelCase, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
