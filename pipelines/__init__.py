"""KFP pipelines and their configs."""
