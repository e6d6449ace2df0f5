// The Key Vault (RBAC authorization) that holds the Graph certificate the jobs mount as a secret.

@description('Azure region of the vault.')
param location string

@description('Name of the Key Vault (3-24 letters, digits and hyphens, globally unique).')
@minLength(3)
@maxLength(24)
param name string

@description('Object id of the identity the jobs run as, granted Key Vault Secrets User.')
param principalId string

@description('Object id of an operator (user, group or service principal) granted Key Vault Certificates Officer to upload the certificate; empty for none.')
param operatorPrincipalId string = ''

@description('Kind of principal `operatorPrincipalId` is.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string = 'User'

@description('Turn on purge protection; irreversible once on.')
param purgeProtection bool = true

@description('Tags applied to the vault.')
param tags object = {}

// Built-in role definitions (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'
var keyVaultCertificatesOfficer = 'a4417e6f-fecd-4de8-b567-7b0420556985'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    // The service rejects an explicit false: leave the property out instead.
    enablePurgeProtection: purgeProtection ? true : null
  }
}

// Container Apps reads the certificate's backing secret (PEM: private key and certificate).
resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource certificatesOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(vault.id, operatorPrincipalId, keyVaultCertificatesOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultCertificatesOfficer)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

@description('URI of the vault, ending in a slash.')
output vaultUri string = vault.properties.vaultUri

@description('Name of the vault.')
output name string = vault.name
