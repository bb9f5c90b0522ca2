// placeholder until the first middleware lands
