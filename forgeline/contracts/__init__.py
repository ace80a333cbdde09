"""The plugin contracts: one module per plugin kind (``forgeline.contracts.cleaners``...), each
holding the interface a plugin of that kind implements and the context it is handed, plus
``base`` (Plugin, PluginConfig) that every kind shares. Finding and loading plugins is
forgeline.registry's work; this package only says what a plugin is."""
