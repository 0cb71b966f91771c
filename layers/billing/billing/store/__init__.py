"""The one DynamoDB store: the key schema, the user/customer link, the projection's writes."""
