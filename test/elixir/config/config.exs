import Config

# Python's None comes back as nil (the default is :none).
config :erlang_python, none_as: nil
